"""Contrastive losses: functional cores plus thin nn.Module wrappers holding learnable temperatures.

Every loss takes (B, D) embeddings (L2-normalised inside unless `normalize=False`) and returns a
`LossOutput(loss, logits, terms)`. Temperatures τ are floats or 0-d tensors (default
`DEFAULT_TEMPERATURE` = 0.07, CLIP's initial τ); modules store `logit_scale = log(1/τ)` clamped to
[`MIN_LOGIT_SCALE`, `MAX_LOGIT_SCALE`] = [−log 100, log 100], i.e. 0.01 ≤ τ ≤ 100. Half-precision
inputs, and any input under `torch.autocast`, are computed in float32.

`terms` uses one ASCII vocabulary (details in `mmlab.losses.output`):
- `"a_to_b"`, `"b_to_a"`: the two directions of a symmetric loss; `"q_to_k"` for `queue_info_nce`;
- `"pos"`, `"neg"`: the two parts of `siglip` and `clip_lite` (pos + neg = loss);
- modality names joined with `-`: one term per pair (`"0-1"`, `"image-text"`) in
  `pairwise_info_nce` and `ContrastiveModel`; one per anchor modality (`"0"`, `"image"`) in
  `symile`;
- `supcon`: none. Terms are parts of the loss only, never counts.

- `info_nce`, `ClipLoss`, `pairwise_info_nce`: CLIP / InfoNCE (Oord et al. 2018; Radford et al.
  2021)
- `siglip`, `SigLipLoss`: sigmoid loss (Zhai et al. 2023)
- `symile`, `SymileLoss`: multilinear inner product for M ≥ 2 modalities (Saporta et al. 2024)
- `clip_lite`: JSD bound with one negative (Shrivastava et al. 2021)
- `debiased_info_nce`, `hard_negative_info_nce`: (Chuang et al. 2020; Robinson et al. 2021)
- `MemoryQueue`, `queue_info_nce`, `queue_clip_loss`, `QueueClipLoss`: MoCo queue (He et al.
  2020); the symmetric CLIP-style functional core and its module
- `block_info_nce`, `block_mask`: InfoNCE with negatives restricted to blocks of k (a control)
- `supcon`: supervised contrastive (Khosla et al. 2020)
- `chunk_size` in `info_nce`, `siglip`, `symile` and their modules: None (default) chooses the
  full (B, B) logits for small batches and blocks of K rows for large ones, which are smaller
  and faster there (`chunking` has the rule; `chunked`: InfoNCE in 4 matmuls; `fused`: SigLIP and
  Symile's loss and gradient in one pass of 3 matmuls); an int K or "full" forces a path
"""

from mmlab.losses.block import block_info_nce, block_mask
from mmlab.losses.clip import ClipLoss, info_nce, pairwise_info_nce
from mmlab.losses.clip_lite import clip_lite
from mmlab.losses.negatives import debiased_info_nce, hard_negative_info_nce
from mmlab.losses.output import DEFAULT_TEMPERATURE, MAX_LOGIT_SCALE, MIN_LOGIT_SCALE, LossOutput
from mmlab.losses.queue import MemoryQueue, QueueClipLoss, queue_clip_loss, queue_info_nce
from mmlab.losses.siglip import SigLipLoss, siglip
from mmlab.losses.supcon import supcon
from mmlab.losses.symile import SymileLoss, multilinear_inner_product, symile
from mmlab.losses.temperature import LearnableTemperature

__all__ = [
    "LossOutput", "DEFAULT_TEMPERATURE", "MAX_LOGIT_SCALE", "MIN_LOGIT_SCALE",
    "LearnableTemperature",
    "info_nce", "ClipLoss", "pairwise_info_nce",
    "siglip", "SigLipLoss",
    "symile", "SymileLoss", "multilinear_inner_product",
    "clip_lite",
    "debiased_info_nce", "hard_negative_info_nce",
    "MemoryQueue", "queue_info_nce", "queue_clip_loss", "QueueClipLoss",
    "supcon",
    "block_info_nce", "block_mask",
]
