"""Projection heads and the `ContrastiveModel` that ties encoders, heads and a loss together.

CLIP (Radford et al., 2021) maps each modality m to the shared sphere with an encoder f_m and a
linear projection g_m: `z_m = g_m(f_m(x_m)) / ‖g_m(f_m(x_m))‖`. SimCLR (Chen et al., 2020) uses an
MLP head instead. With M > 2 modalities the loss is averaged over modality pairs:

    L = (1 / |P|) Σ_{(m, n) ∈ P} loss(z_m[present_m ∧ present_n], z_n[present_m ∧ present_n])

where P is every pair ("all"), every pair with one anchor modality ("anchor:image", as in
ImageBind, Girdhar et al., 2023), or an explicit list. A multi-way loss (`loss.multiway = True`,
e.g. Symile, Saporta et al., 2024) gets all M embeddings at once on the rows where all are present.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmlab._checks import check_choice, check_int, check_modalities, check_probability, check_tensor
from mmlab._norm import l2_normalize
from mmlab.losses import LossOutput

PairSpec = str | Sequence[tuple[str, str]]


class ProjectionHead(nn.Module):
    """Linear or MLP projection to the shared space, L2-normalised: `z = g(h) / ‖g(h)‖`.

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
        """Args: h (B, in_dim). Returns: unit-norm (B, out_dim)."""
        check_tensor("h", h, ndim=2, what=f"of shape (B, in_dim={self.in_dim})")
        if h.shape[1] != self.in_dim:
            raise ValueError(f"`h` must be a tensor of shape (B, in_dim={self.in_dim}), got {tuple(h.shape)}.")
        return l2_normalize(self.net(h), dim=-1)  # (B, out_dim)


def resolve_pairs(pairs: PairSpec, modalities: Sequence[str]) -> list[tuple[str, str]]:
    """Turn a `pairs` option into a list of (m1, m2).

    Args:
        pairs: "all", "anchor:<modality>", or a list of (m1, m2) tuples.
        modalities: the known modality names, in order.
    Returns:
        The pairs, in a fixed order.
    """
    modalities = list(modalities)
    valid = f"'all', 'anchor:<modality>' with <modality> in {modalities}, or a list of (m1, m2) tuples"
    if isinstance(pairs, str):
        if pairs == "all":
            return list(itertools.combinations(modalities, 2))
        if pairs.startswith("anchor:"):
            anchor = pairs.split(":", 1)[1]
            if anchor not in modalities:
                raise ValueError(f"`pairs` anchor {anchor!r} is not a modality of the model; valid: {valid}.")
            return [(anchor, m) for m in modalities if m != anchor]
        raise ValueError(f"`pairs` must be {valid}; got {pairs!r}.")
    out = []
    for p in pairs:
        if not (isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(m, str) for m in p)):
            raise ValueError(f"`pairs` must be {valid}; item {p!r} is not a (m1, m2) tuple of names.")
        m1, m2 = p
        if m1 not in modalities or m2 not in modalities or m1 == m2:
            raise ValueError(f"`pairs` item {tuple(p)!r} must name two different modalities of {modalities}.")
        out.append((m1, m2))
    if not out:
        raise ValueError(f"`pairs` is an empty list; valid: {valid}.")
    return out


def _check_batch_inputs(batch: Mapping[str, Any], modalities: Sequence[str]) -> None:
    """Each `batch[m]` is a tensor with B ≥ 1 samples on dim 0 or a non-empty list (text), and
    every modality has the same B (row i of every modality is one pair)."""
    sizes: dict[str, int] = {}
    for m in modalities:
        value, name = batch[m], f"batch[{m!r}]"
        if isinstance(value, Tensor):
            if value.ndim == 0:
                raise ValueError(f"`{name}` is a 0-D tensor; it must hold B samples on dim 0, e.g. "
                                 "(B, 3, H, W) images, (B, T) waveforms or (B, L) token ids.")
            n = value.shape[0]
        elif isinstance(value, (list, tuple)):
            n = len(value)
        else:
            hint = " (one string per sample)" if isinstance(value, str) else ""
            raise TypeError(f"`{name}` must be a tensor with samples on dim 0 or a list of str (text)"
                            f"{hint}, got {type(value).__name__}.")
        if n == 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else f"a list of length {n}"
            raise ValueError(f"`{name}` is empty ({shape}); pass at least one sample.")
        sizes[m] = n
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"`batch[{m!r}]` has {n}" for m, n in sizes.items())
        raise ValueError(f"every modality of `batch` must have the same batch size B (row i of each "
                         f"modality is one pair); {listed} samples.")


class ContrastiveModel(nn.Module):
    """Encoders + projection heads + a contrastive loss over modality pairs.

    Args:
        encoders: modality name → encoder (`(batch[m]) -> (B, out_dim)`).
        heads: modality name → head (e.g. `ProjectionHead`); modalities without one use the
            encoder output directly. None: no heads. Outputs are always L2-normalised.
        loss: a pairwise loss `(a, b) -> LossOutput` (e.g. `ClipLoss()`, registered as a submodule
            so its temperature trains), or a multi-way loss with `multiway = True`
            (`(*z) -> LossOutput`, e.g. `SymileLoss()`).
        pairs: "all", "anchor:<modality>", or a list of (m1, m2) tuples (pairwise losses only).
    """

    def __init__(self, encoders: Mapping[str, nn.Module], heads: Mapping[str, nn.Module] | None,
                 loss: Callable[..., LossOutput], pairs: PairSpec = "all") -> None:
        super().__init__()
        check_modalities("encoders", encoders)
        if not encoders:
            raise ValueError("`encoders` is empty; pass e.g. {'image': ConvEncoder(), 'text': TextTransformer(tok)}.")
        for m, enc in encoders.items():
            if not isinstance(enc, nn.Module):
                raise TypeError(f"`encoders[{m!r}]` must be an nn.Module, got {type(enc).__name__}.")
        heads = {} if heads is None else dict(check_modalities("heads", heads))
        extra = [m for m in heads if m not in encoders]
        if extra:
            raise ValueError(f"`heads` has modalities {extra} without an encoder; encoders: {list(encoders)}.")
        if not callable(loss):
            raise TypeError(f"`loss` must be callable (e.g. mmlab.losses.ClipLoss()), got {type(loss).__name__}.")
        self.encoders = nn.ModuleDict(dict(encoders))
        self.heads = nn.ModuleDict(heads)
        self.loss = loss  # registered as a submodule when it is an nn.Module
        self.multiway = bool(getattr(loss, "multiway", False))
        self.pairs = resolve_pairs(pairs, list(encoders)) if not self.multiway else []
        if not self.multiway and len(encoders) < 2:
            raise ValueError(f"a pairwise loss needs at least 2 modalities, got encoders for {list(encoders)}.")

    @property
    def modalities(self) -> list[str]:
        """The modality names, in the order of `encoders`."""
        return list(self.encoders)

    @property
    def temperature(self) -> Any:
        """τ of the loss (`loss.temperature`), or None if the loss has none."""
        return getattr(self.loss, "temperature", None)

    def encode(self, batch: Mapping[str, Any], modalities: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Embed each modality: `z_m = normalize(head_m(encoder_m(batch[m])))`.

        Args:
            batch: a batch dict (see docs/DESIGN.md).
            modalities: which to encode (default: every model modality present in `batch`).
        Returns:
            modality → unit-norm (B, D) (all rows, including ones marked absent in `present`).
        Raises:
            ValueError / TypeError naming `batch[m]`: a missing modality, a value that is not a
            tensor or list, an empty or 0-D value, batch sizes that differ between modalities, or
            an input its encoder rejects (the encoder's message is kept).
        """
        check_modalities("batch", batch)
        if modalities is None:
            modalities = [m for m in self.encoders if m in batch]
            if not modalities:
                raise ValueError(f"`batch` has none of the model's modalities {self.modalities}; "
                                 f"its keys are {sorted(batch)}.")
        else:
            unknown = [m for m in modalities if m not in self.encoders]
            if unknown:
                raise ValueError(f"`modalities` {unknown} have no encoder; the model has {self.modalities}.")
            check_modalities("batch", batch, required=modalities)
        _check_batch_inputs(batch, modalities)
        out = {}
        for m in modalities:
            try:
                h = self.encoders[m](batch[m])  # (B, out_dim)
            except (ValueError, TypeError) as err:  # name the batch key, not the encoder's argument
                kind = ValueError if isinstance(err, ValueError) else TypeError
                raise kind(f"`batch[{m!r}]` was rejected by `encoders[{m!r}]` "
                           f"({type(self.encoders[m]).__name__}): {err}") from err
            if m in self.heads:
                h = self.heads[m](h)  # (B, D)
            out[m] = l2_normalize(h, dim=-1)  # (B, D)
        return out

    def _present(self, batch: Mapping[str, Any], m: str, size: int) -> Tensor | None:
        present = batch.get("present") or {}
        mask = present.get(m)
        if mask is None:
            return None
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (size,):
            raise ValueError(f"`batch['present'][{m!r}]` must be a bool tensor of shape ({size},), got "
                             f"{mask.dtype if isinstance(mask, Tensor) else type(mask).__name__} "
                             f"{tuple(mask.shape) if isinstance(mask, Tensor) else ''}.")
        return mask

    @staticmethod
    def _and(a: Tensor | None, b: Tensor | None) -> Tensor | None:
        if a is None or b is None:
            return b if a is None else a
        return a & b

    def forward(self, batch: Mapping[str, Any]) -> LossOutput:
        """The mean loss over modality pairs (or the multi-way loss), on rows where both are present.

        Args:
            batch: a batch dict with at least two of the model's modalities.
        Returns:
            `LossOutput(loss, logits, terms)`: loss = mean over pairs, terms = {"m1-m2": pair loss}
            (multi-way: {"m1-m2-m3": loss, **loss terms}), logits = those of the first pair.
        """
        check_modalities("batch", batch)
        available = [m for m in self.encoders if m in batch]
        if self.multiway:
            mods = available
            if len(mods) < 2:
                raise ValueError(f"`batch` must hold at least 2 of {self.modalities}; it has {available}.")
            z = self.encode(batch, mods)
            size = next(iter(z.values())).shape[0]
            mask = None
            for m in mods:
                mask = self._and(mask, self._present(batch, m, size))
            if mask is not None:
                if not bool(mask.any()):
                    raise ValueError(f"no row of the batch has all of {mods} present.")
                z = {m: v[mask] for m, v in z.items()}
            out = self.loss(*[z[m] for m in mods])
            return LossOutput(out.loss, out.logits, {"-".join(mods): out.loss, **out.terms})
        pairs = [(a, b) for a, b in self.pairs if a in batch and b in batch]
        if not pairs:
            raise ValueError(f"`batch` holds {available}; no pair of {self.pairs} has both modalities.")
        z = self.encode(batch, [m for m in self.encoders if any(m in p for p in pairs)])
        size = next(iter(z.values())).shape[0]
        terms: dict[str, Tensor] = {}
        logits = None
        for a, b in pairs:
            mask = self._and(self._present(batch, a, size), self._present(batch, b, size))
            za, zb = z[a], z[b]  # (B, D) each
            if mask is not None:
                if not bool(mask.any()):
                    continue  # no row has both: this pair contributes nothing to this batch
                za, zb = za[mask], zb[mask]  # (B', D)
            out = self.loss(za, zb)
            terms[f"{a}-{b}"] = out.loss
            if logits is None:
                logits = out.logits
        if not terms:
            raise ValueError(f"no row of the batch has both modalities of any pair in {pairs}; check `present`.")
        loss = torch.stack(list(terms.values())).mean()
        return LossOutput(loss, logits, terms)
