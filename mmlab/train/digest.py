"""What a checkpoint file holds, checked and fingerprinted: plain containers and a SHA-256.

`torch.load(weights_only=True)` refuses anything but tensors, containers and primitives, so
`check_plain` refuses everything else when *saving*, with the path to the offending value.
`torch.save` files carry no checksum of their own: a flipped byte inside a tensor would load as
wrong weights. `digest` hashes the structure, every primitive and every tensor's bytes, and the
checkpoint stores it next to the payload.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

FORMAT = "mmlab.checkpoint"
VERSION = 1
_PRIMITIVES = (str, int, float, bool, type(None))


def check_plain(obj: Any, where: str) -> None:
    """Raise TypeError if `obj` holds anything `torch.load(weights_only=True)` would refuse."""
    if isinstance(obj, Tensor) or isinstance(obj, _PRIMITIVES):
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"`{where}` has a key {k!r} of type {type(k).__name__}; "
                                "checkpoint keys must be str or int.")
            check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"`{where}` is a {type(obj).__name__}; a checkpoint holds only tensors, dicts, "
                    "lists, tuples, str, int, float, bool and None (so it loads with "
                    "weights_only=True). Convert it first, e.g. `history.to_dict()` or `float(x)`.")


def digest(obj: Any) -> str:
    """SHA-256 over a plain object: structure, primitive values and every tensor's bytes."""
    h = hashlib.sha256()

    def visit(x: Any) -> None:
        if isinstance(x, Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, Mapping):
            h.update(b"{")
            for k in sorted(x, key=repr):
                h.update(repr(k).encode())
                visit(x[k])
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"(" if isinstance(x, tuple) else b"[")
            for v in x:
                visit(v)
            h.update(b"]")
        elif isinstance(x, float) and math.isnan(x):
            h.update(b"nan")
        else:
            h.update(f"{type(x).__name__}:{x!r}".encode())

    visit(obj)
    return h.hexdigest()
