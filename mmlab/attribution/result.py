"""`Attribution`: an explanation of one similarity over the parts of one sample."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

ATTENTION_METHODS = ("grad_attention", "rollout")
SIMILARITY_METHODS = ("grad_attention", "rollout", "integrated_gradients", "input_x_gradient")


@dataclass
class Attribution:
    """An explanation of s = cos(z_i, z_j) over the parts of sample i.

    Attributes:
        scores: detached, on the CPU: (gh, gw) for image patches, (H, W) for pixels, (frames,)
            or (mels, frames) for audio, (n_tokens,) for text.
        kind: "patches", "pixels", "frames" or "tokens".
        grid_shape: shape of `scores` as a tuple.
        tokens: the text tokens (text only, else None).
        similarity: s = cos(z_i, z_j) at the input.
        method: the method used.
        modality: the explained modality; `other`: the modality of z_j.
    """

    scores: Tensor
    kind: str
    grid_shape: tuple[int, ...]
    tokens: list[str] | None
    similarity: float
    method: str = ""
    modality: str = ""
    other: str = ""
