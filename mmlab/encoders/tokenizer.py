"""A word-level tokenizer with a vocabulary built from the data.

Lowercase, split on non-alphanumerics, specials PAD=0, UNK=1, CLS=2. `encode` puts CLS first:
`ids[:, 0] == CLS`, words at positions 1..L-1, PAD after them. The text encoders of
`mmlab.encoders.text` and `mmlab.encoders.pretokenize` read its ids.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from mmlab._checks import check_choice, check_int

PAD, UNK, CLS = 0, 1, 2
SPECIALS = ("<pad>", "<unk>", "<cls>")
_WORD = re.compile(r"[a-z0-9]+")


def check_texts(name: str, texts: Any) -> list[str]:
    """Check a non-empty list (or tuple) of strings."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"`{name}` must be a list of str (one per sample), "
                        f"got {type(texts).__name__}"
                        f"{'; wrap a single text as [text]' if isinstance(texts, str) else ''}.")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"`{name}` must contain only str; item {bad[0]} is "
                        f"{type(texts[bad[0]]).__name__}.")
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
            raise ValueError(f"`vocab` must start with {list(SPECIALS)} (PAD=0, UNK=1, CLS=2), "
                             f"got {vocab[:3]}.")
        if len(set(vocab)) != len(vocab):
            raise ValueError("`vocab` has duplicate words.")
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_count: int = 1) -> Tokenizer:
        """Build the vocabulary: words seen ≥ `min_count` times, most frequent first (ties
        alphabetical)."""
        texts = check_texts("texts", list(texts) if not isinstance(texts, str) else texts)
        check_int("min_count", min_count)
        counts = Counter(w for t in texts for w in cls.split(t))
        words = sorted((w for w, c in counts.items() if c >= min_count),
                       key=lambda w: (-counts[w], w))
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
                    raise ValueError(f"`ids` contains {i}, outside the vocabulary "
                                     f"[0, {len(self.vocab)}).")
        return [" ".join(self.vocab[int(i)] for i in r if int(i) not in (PAD, CLS)) for r in rows]
