"""The shared interface of every fusion operator: a dict of (B, D_m) features in, (B, out_dim) out.

`FusionOperator.forward(features, present=None)` takes `features: dict[str, Tensor]`, one
(B, D_m) tensor per modality named in `dims` (the order of `dims` fixes the modality order),
and an optional `present: dict[str, BoolTensor (B,)]` mask (a missing key means "all present",
as in the batch format of docs/DESIGN.md). This module validates both once, at the boundary,
and hands each operator zero-filled features, so a missing modality's values can never leak
into the output, whatever garbage the caller left in its slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mmlab._checks import check_embeddings, check_int, check_modalities, values_are_cheap


def check_dims(dims: Any, *, minimum: int = 1, exactly: int | None = None,
               op: str = "fusion") -> dict[str, int]:
    """Check `dims`, the modality name → width D_m mapping that fixes the modality order.

    Args:
        dims: a dict such as `{"image": 64, "audio": 32}`.
        minimum: the least number of modalities M the operator accepts.
        exactly: if given, the operator needs exactly this many modalities.
        op: the operator's name, for the error message.
    Returns:
        A plain `dict[str, int]` in the given order.
    """
    if not isinstance(dims, Mapping):
        raise TypeError("`dims` must be a dict of modality name → width D_m, "
                        "e.g. {'image': 64, 'audio': 32}; "
                        f"got {type(dims).__name__}.")
    out: dict[str, int] = {}
    for m, d in dims.items():
        if not isinstance(m, str) or not m or "." in m:
            raise ValueError(f"`dims` keys must be non-empty modality names without '.', "
                             f"got {m!r}.")
        out[m] = check_int(f"dims[{m!r}]", d, minimum=1)
    if exactly is not None and len(out) != exactly:
        raise ValueError(f"{op} needs exactly {exactly} modalities in `dims`, "
                         f"got M={len(out)} ({list(out)}). "
                         "Use TensorFusion or LowRankTensorFusion for any number of modalities.")
    if len(out) < minimum:
        raise ValueError(f"{op} needs at least {minimum} modalities in `dims`, "
                         f"got M={len(out)} ({list(out)}).")
    return out


class FusionOperator(nn.Module):
    """Base class: validation of `features` and `present`, and the modality order.

    Subclasses implement `_fuse(x, masks)` where `x[m]` is the (B, D_m) feature with missing rows
    set to zero and `masks[m]` the bool (B,) presence mask (all True when not given).

    Attributes:
        dims: modality name → width D_m, in modality order.
        modalities: the modality names, in order.
        out_dim: width of the fused output.
        handles_missing: False when the operator raises for some missing modality.
        attends: True when `forward` accepts `return_attention=True`.
    """

    handles_missing: bool = True
    attends: bool = False
    out_dim: int

    def __init__(self, dims: Mapping[str, int], *, minimum: int = 1,
                 exactly: int | None = None) -> None:
        super().__init__()
        self.dims = check_dims(dims, minimum=minimum, exactly=exactly, op=type(self).__name__)
        self.modalities = tuple(self.dims)

    def prepare(self, features: Any, present: Any = None,
                ) -> tuple[dict[str, Tensor], dict[str, Tensor], bool]:
        """Validate the inputs and zero-fill missing rows.

        Args:
            features: dict modality → (B, D_m) float tensor, with exactly the keys of `dims`.
            present: None, or dict modality → bool (B,) (a missing key means all present).
        Returns:
            `(x, masks, any_missing)`: zero-filled features, full presence masks, and whether any
            entry of any mask is False (True whenever `present` is given but its values cannot
            be read without a device sync, e.g. on a GPU).
        """
        x = self._check_features(features)  # modality → (B, D_m)
        first = x[self.modalities[0]]
        b, device = first.shape[0], first.device
        masks = {m: torch.ones(b, dtype=torch.bool, device=device) for m in self.modalities}
        if present is None:
            return x, masks, False
        masks.update(self._check_present(present, b, device))
        stacked = torch.stack([masks[m] for m in self.modalities], dim=1)  # (B, M)
        # reading mask values waits for the device: only where that is free (CPU, eager);
        # elsewhere `any_missing` stays True, which every operator handles exactly
        any_missing = True
        if values_are_cheap(stacked):
            none = ~stacked.any(dim=1)  # (B,)
            if bool(none.any()):
                rows = none.nonzero().flatten().tolist()[:10]
                raise ValueError(f"sample(s) {rows} have no modality present in `present`; every "
                                 "sample needs at least one modality (drop those rows from the "
                                 "batch).")
            any_missing = not bool(stacked.all())
        x = {m: torch.where(masks[m][:, None], t, torch.zeros((), dtype=t.dtype, device=device))
             for m, t in x.items()}  # missing rows → 0
        return x, masks, any_missing

    def _check_features(self, features: Any) -> dict[str, Tensor]:
        """`features` as a dict in modality order, each (B, D_m), one B, one dtype and device."""
        check_modalities("features", features)
        missing = [m for m in self.modalities if m not in features]
        unknown = [m for m in features if m not in self.dims]
        if missing or unknown:
            raise ValueError(
                f"`features` must have exactly the modalities of `dims` {list(self.modalities)}; "
                f"missing {missing}, unknown {unknown}. For a modality absent from some samples, "
                "pass zeros in its slot and mark it with `present={name: bool mask (B,)}`.")
        x: dict[str, Tensor] = {}
        for m in self.modalities:
            t = check_embeddings(f"features[{m!r}]", features[m])
            if t.shape[1] != self.dims[m]:
                raise ValueError(f"`features[{m!r}]` must have width D={self.dims[m]} "
                                 f"(from dims[{m!r}]), got shape {tuple(t.shape)}.")
            x[m] = t
        first = self.modalities[0]
        b, dtype, device = x[first].shape[0], x[first].dtype, x[first].device
        for m, t in x.items():
            if t.shape[0] != b:
                shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in x.items())
                raise ValueError("every modality in `features` must have the same batch size B; "
                                 f"got {shapes}. Rows are paired by position.")
            if t.dtype != dtype or t.device != device:
                raise TypeError("every modality in `features` must share one dtype and device; "
                                f"`features[{first!r}]` is {dtype} on {device} but "
                                f"`features[{m!r}]` is {t.dtype} on {t.device}.")
        return x

    def _check_present(self, present: Any, b: int, device: torch.device) -> dict[str, Tensor]:
        """The given presence masks, each bool (B,), moved to `device`."""
        check_modalities("present", present)
        unknown = [m for m in present if m not in self.dims]
        if unknown:
            raise ValueError(f"`present` has modalities {unknown} that are not in `dims` "
                             f"{list(self.modalities)}.")
        masks = {}
        for m, p in present.items():
            if not isinstance(p, Tensor):
                raise TypeError(f"`present[{m!r}]` must be a bool tensor of shape (B,), "
                                f"got {type(p).__name__}.")
            if p.dtype != torch.bool:
                raise TypeError(f"`present[{m!r}]` must be a bool tensor, got {p.dtype}; "
                                f"convert it with `present[{m!r}].bool()`.")
            if p.shape != (b,):
                raise ValueError(f"`present[{m!r}]` must have shape (B,) = ({b},), "
                                 f"got {tuple(p.shape)}.")
            masks[m] = p.to(device)
        return masks

    def require(self, masks: dict[str, Tensor], modality: str, role: str, instead: str) -> None:
        """Raise a clear ValueError when `modality` is missing for some sample (where the mask's
        values are cheap to read: on the CPU; on a GPU the check is skipped).

        Args:
            masks: the presence masks from `prepare`.
            modality: the modality the operator cannot do without.
            role: what the modality is used for (e.g. "the conditioning modality").
            instead: the operators to suggest.
        """
        absent = ~masks[modality]
        if values_are_cheap(absent) and bool(absent.any()):
            rows = absent.nonzero().flatten().tolist()[:10]
            raise ValueError(f"{type(self).__name__} needs {role} {modality!r} for every sample, "
                             f"but it is missing for sample(s) {rows}. Use {instead} instead, "
                             "which handle missing modalities.")

    def forward(self, features: dict[str, Tensor],
                present: dict[str, Tensor] | None = None) -> Tensor:
        """Fuse the modalities.

        Args:
            features: dict modality → (B, D_m).
            present: optional dict modality → bool (B,); a missing key means all present.
        Returns:
            The fused features, (B, out_dim).
        """
        x, masks, any_missing = self.prepare(features, present)
        return self._fuse(x, masks, any_missing)

    def _fuse(self, x: dict[str, Tensor], masks: dict[str, Tensor], any_missing: bool) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"dims={self.dims}, out_dim={self.out_dim}"
