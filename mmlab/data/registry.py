"""The dataset registry: `load(name, split, **options)`, `available()`, `register(name)`.

One registry, one way to get data (d2l's DATA_HUB habit): every built-in dataset is a
factory `factory(split, **options) -> MultimodalDataset` registered under a name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from mmlab.data.dataset import MultimodalDataset

SPLITS: tuple[str, ...] = ("train", "val", "test")
Factory = Callable[..., MultimodalDataset]
_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: `@register("shapes")` makes `load("shapes", split, **options)` call the factory.

    The factory's first parameter is `split`; its other parameters are keyword options.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty str, got {name!r}.")

    def deco(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory
    return deco


def available() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(_REGISTRY)


def load(name: str, split: str = "train", **options) -> MultimodalDataset:
    """Build a registered dataset.

    Args:
        name: one of `available()`, e.g. "shapes", "digits", "xor".
        split: "train", "val" or "test".
        **options: dataset options (e.g. `n=500, seed=0`); see the dataset's factory docstring.
    Returns:
        A `MultimodalDataset`.
    Raises:
        ValueError: for an unknown name, split or option.
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown dataset {name!r}; available datasets: {', '.join(available())}. "
                         "Use mmlab.data.from_folder(...) for your own files.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r} for dataset {name!r}; "
                         f"valid splits: {', '.join(SPLITS)}.")
    factory = _REGISTRY[name]
    params = inspect.signature(factory).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    valid = [p for p in params
             if p != "split" and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = [k for k in options if k not in valid]
    if unknown and not accepts_any:
        raise ValueError(f"Unknown option(s) {unknown} for dataset {name!r}; "
                         f"valid options: {', '.join(valid)}.")
    return factory(split, **options)
