"""`ContrastiveModel`: encoders, projection heads and a contrastive loss over modality pairs.

CLIP (Radford et al., 2021) maps each modality m to the shared sphere with an encoder f_m and a
projection g_m, then normalises: `z_m = g_m(f_m(x_m)) / ‖g_m(f_m(x_m))‖`. With M > 2 modalities
the loss is averaged over modality pairs:

    L = (1 / |P|) Σ_{(m, n) ∈ P} loss(z_m[present_m ∧ present_n], z_n[present_m ∧ present_n])

where P is every pair ("all"), every pair with one anchor modality ("anchor:image", as in
ImageBind, Girdhar et al., 2023), or an explicit list. A multi-way loss (`loss.multiway = True`,
e.g. Symile, Saporta et al., 2024) gets all M embeddings at once on the rows where all are present.

Normalisation happens once on each path. `encode` returns unit rows (for retrieval and plots).
`forward` hands the loss the raw projections g_m(f_m(x_m)) when the loss normalises them itself
(`loss.normalize` is True, the default of every mmlab loss), and unit rows otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmlab._checks import check_modalities
from mmlab._norm import l2_normalize
from mmlab.losses import LossOutput
from mmlab.utils import model_device

__all__ = ["ContrastiveModel", "resolve_pairs", "PairSpec"]

PairSpec = str | Sequence[tuple[str, str]]


def resolve_pairs(pairs: PairSpec, modalities: Sequence[str]) -> list[tuple[str, str]]:
    """Turn a `pairs` option into a list of (m1, m2).

    Args:
        pairs: "all", "anchor:<modality>", or a list of (m1, m2) tuples.
        modalities: the known modality names, in order.
    Returns:
        The pairs, in a fixed order.
    """
    modalities = list(modalities)
    valid = (f"'all', 'anchor:<modality>' with <modality> in {modalities}, or a list of (m1, m2) "
             "tuples")
    if isinstance(pairs, str):
        if pairs == "all":
            return list(itertools.combinations(modalities, 2))
        if pairs.startswith("anchor:"):
            anchor = pairs.split(":", 1)[1]
            if anchor not in modalities:
                raise ValueError(f"`pairs` anchor {anchor!r} is not a modality of the model; "
                                 f"valid: {valid}.")
            return [(anchor, m) for m in modalities if m != anchor]
        raise ValueError(f"`pairs` must be {valid}; got {pairs!r}.")
    out = []
    for p in pairs:
        if not (isinstance(p, (tuple, list)) and len(p) == 2
                and all(isinstance(m, str) for m in p)):
            raise ValueError(f"`pairs` must be {valid}; item {p!r} is not a (m1, m2) tuple of "
                             "names.")
        m1, m2 = p
        if m1 not in modalities or m2 not in modalities or m1 == m2:
            raise ValueError(f"`pairs` item {tuple(p)!r} must name two different modalities of "
                             f"{modalities}.")
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
                raise ValueError(f"`{name}` is a 0-D tensor; it must hold B samples on dim 0, "
                                 "e.g. (B, 3, H, W) images, (B, T) waveforms or (B, L) token ids.")
            n = value.shape[0]
        elif isinstance(value, (list, tuple)):
            n = len(value)
        else:
            hint = " (one string per sample)" if isinstance(value, str) else ""
            raise TypeError(f"`{name}` must be a tensor with samples on dim 0 or a list of str "
                            f"(text){hint}, got {type(value).__name__}.")
        if n == 0:
            shape = tuple(value.shape) if isinstance(value, Tensor) else f"a list of length {n}"
            raise ValueError(f"`{name}` is empty ({shape}); pass at least one sample.")
        sizes[m] = n
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"`batch[{m!r}]` has {n}" for m, n in sizes.items())
        raise ValueError("every modality of `batch` must have the same batch size B (row i of "
                         f"each modality is one pair); {listed} samples.")


class ContrastiveModel(nn.Module):
    """Encoders + projection heads + a contrastive loss over modality pairs.

    Args:
        encoders: modality name → encoder (`(batch[m]) -> (B, out_dim)`).
        heads: modality name → head (e.g. `ProjectionHead`); modalities without one use the
            encoder output directly. None: no heads.
        loss: a pairwise loss `(a, b) -> LossOutput` (e.g. `ClipLoss()`, registered as a
            submodule so its temperature trains), or a multi-way loss with `multiway = True`
            (`(*z) -> LossOutput`, e.g. `SymileLoss()`).
        pairs: "all", "anchor:<modality>", or a list of (m1, m2) tuples (pairwise losses only).
    """

    def __init__(self, encoders: Mapping[str, nn.Module], heads: Mapping[str, nn.Module] | None,
                 loss: Callable[..., LossOutput], pairs: PairSpec = "all") -> None:
        super().__init__()
        check_modalities("encoders", encoders)
        if not encoders:
            raise ValueError("`encoders` is empty; pass e.g. {'image': ConvEncoder(), "
                             "'text': TextTransformer(tok)}.")
        for m, enc in encoders.items():
            if not isinstance(enc, nn.Module):
                raise TypeError(f"`encoders[{m!r}]` must be an nn.Module, "
                                f"got {type(enc).__name__}.")
        heads = {} if heads is None else dict(check_modalities("heads", heads))
        extra = [m for m in heads if m not in encoders]
        if extra:
            raise ValueError(f"`heads` has modalities {extra} without an encoder; "
                             f"encoders: {list(encoders)}.")
        if not callable(loss):
            raise TypeError("`loss` must be callable (e.g. mmlab.losses.ClipLoss()), "
                            f"got {type(loss).__name__}.")
        self.encoders = nn.ModuleDict(dict(encoders))
        self.heads = nn.ModuleDict(heads)
        self.loss = loss  # registered as a submodule when it is an nn.Module
        self.multiway = bool(getattr(loss, "multiway", False))
        self.pairs = resolve_pairs(pairs, list(encoders)) if not self.multiway else []
        if not self.multiway and len(encoders) < 2:
            raise ValueError("a pairwise loss needs at least 2 modalities, got encoders for "
                             f"{list(encoders)}.")

    @property
    def modalities(self) -> list[str]:
        """The modality names, in the order of `encoders`."""
        return list(self.encoders)

    @property
    def temperature(self) -> Any:
        """τ of the loss (`loss.temperature`), or None if the loss has none."""
        return getattr(self.loss, "temperature", None)

    def embed(self, batch: Mapping[str, Any],
              modalities: Sequence[str] | None = None) -> dict[str, Tensor]:
        """The raw projections `head_m(encoder_m(batch[m]))`, not normalised.

        A tensor input on another device than its encoder's parameters is moved to theirs (so a
        dataset's batch on the CPU can be embedded by a model on the GPU); the outputs stay there.

        Args:
            batch: a batch dict (see docs/DESIGN.md).
            modalities: which to embed (default: every model modality present in `batch`).
        Returns:
            modality → (B, D) (all rows, including ones marked absent in `present`).
        Raises:
            ValueError / TypeError naming `batch[m]`: a missing modality, a value that is not a
            tensor or list, an empty or 0-D value, batch sizes that differ between modalities,
            or an input its encoder rejects (the encoder's message is kept).
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
                raise ValueError(f"`modalities` {unknown} have no encoder; the model has "
                                 f"{self.modalities}.")
            check_modalities("batch", batch, required=modalities)
        _check_batch_inputs(batch, modalities)
        out = {}
        for m in modalities:
            x = batch[m]
            device = model_device(self.encoders[m], default=None)  # None: no weights to follow
            if isinstance(x, Tensor) and device is not None and x.device != device:
                x = x.to(device)  # a batch on the CPU, a model on the GPU: inputs follow the model
            try:
                h = self.encoders[m](x)  # (B, out_dim)
            except (ValueError, TypeError) as err:  # name the batch key, not the encoder's arg
                kind = ValueError if isinstance(err, ValueError) else TypeError
                raise kind(f"`batch[{m!r}]` was rejected by `encoders[{m!r}]` "
                           f"({type(self.encoders[m]).__name__}): {err}") from err
            out[m] = self.heads[m](h) if m in self.heads else h  # (B, D)
        return out

    def encode(self, batch: Mapping[str, Any],
               modalities: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Embed each modality on the unit sphere: `z_m = normalize(head_m(encoder_m(batch[m])))`.

        Same arguments and errors as `embed`. Returns: modality → unit-norm (B, D).
        """
        return {m: l2_normalize(z, dim=-1) for m, z in self.embed(batch, modalities).items()}

    def _for_loss(self, batch: Mapping[str, Any], modalities: Sequence[str]) -> dict[str, Tensor]:
        """What the loss gets: raw projections if it normalises them itself, else unit rows."""
        if getattr(self.loss, "normalize", False) is True:
            return self.embed(batch, modalities)
        return self.encode(batch, modalities)

    def _present(self, batch: Mapping[str, Any], m: str, size: int) -> Tensor | None:
        present = batch.get("present") or {}
        mask = present.get(m)
        if mask is None:
            return None
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (size,):
            kind = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            shape = tuple(mask.shape) if isinstance(mask, Tensor) else ""
            raise ValueError(f"`batch['present'][{m!r}]` must be a bool tensor of shape ({size},), "
                             f"got {kind} {shape}.")
        return mask

    def _both_present(self, batch: Mapping[str, Any], mods: Sequence[str],
                      size: int) -> Tensor | None:
        """The rows where every modality of `mods` is present (None: all rows)."""
        mask = None
        for m in mods:
            own = self._present(batch, m, size)
            mask = own if mask is None else (mask if own is None else mask & own)
        return mask

    def forward(self, batch: Mapping[str, Any]) -> LossOutput:
        """The mean loss over modality pairs (or the multi-way loss), on rows with all present.

        Args:
            batch: a batch dict with at least two of the model's modalities.
        Returns:
            `LossOutput(loss, logits, terms)`: loss = mean over pairs, terms = {"m1-m2": pair
            loss} (multi-way: {"m1-m2-m3": loss, **loss terms}), logits = those of the first pair.
        Presence masks select rows by boolean indexing, whose output size the host must know:
        one device sync per masked pair on a GPU.
        """
        check_modalities("batch", batch)
        available = [m for m in self.encoders if m in batch]
        if self.multiway:
            return self._multiway(batch, available)
        pairs = [(a, b) for a, b in self.pairs if a in batch and b in batch]
        if not pairs:
            raise ValueError(f"`batch` holds {available}; no pair of {self.pairs} has both "
                             "modalities.")
        z = self._for_loss(batch, [m for m in self.encoders if any(m in p for p in pairs)])
        size = next(iter(z.values())).shape[0]
        terms: dict[str, Tensor] = {}
        logits = None
        for a, b in pairs:
            mask = self._both_present(batch, (a, b), size)
            za, zb = (z[a], z[b]) if mask is None else (z[a][mask], z[b][mask])  # (B', D) each
            if za.shape[0] == 0:
                continue  # no row has both: this pair contributes nothing to this batch
            out = self.loss(za, zb)
            terms[f"{a}-{b}"] = out.loss
            if logits is None:
                logits = out.logits
        if not terms:
            raise ValueError(f"no row of the batch has both modalities of any pair in {pairs}; "
                             "check `present`.")
        loss = torch.stack(list(terms.values())).mean()
        return LossOutput(loss, logits, terms)

    def _multiway(self, batch: Mapping[str, Any], mods: list[str]) -> LossOutput:
        if len(mods) < 2:
            raise ValueError(f"`batch` must hold at least 2 of {self.modalities}; it has {mods}.")
        z = self._for_loss(batch, mods)
        mask = self._both_present(batch, mods, next(iter(z.values())).shape[0])
        if mask is not None:
            z = {m: v[mask] for m, v in z.items()}  # (B', D) each
            if next(iter(z.values())).shape[0] == 0:
                raise ValueError(f"no row of the batch has all of {mods} present.")
        out = self.loss(*[z[m] for m in mods])
        return LossOutput(out.loss, out.logits, {"-".join(mods): out.loss, **out.terms})
