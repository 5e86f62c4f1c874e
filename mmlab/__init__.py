"""mmlab: learn multimodal contrastive learning by doing.

The library behind the notebooks: datasets, encoders, contrastive losses, fusion operators,
metrics, attribution and interactive plots. Submodules load on first use, so
`import mmlab` stays fast: `mmlab.losses.info_nce`, `mmlab.data.load("digits")`, ...
"""

from __future__ import annotations

import importlib
from typing import Any

from mmlab.utils import get_device, is_tiny, seed_everything, tiny_or_full

__version__ = "0.1.0"

_SUBMODULES = ("data", "encoders", "losses", "metrics", "fusion", "attribution", "model", "train",
               "recipes", "distributed", "viz", "utils", "claims", "exercises")

__all__ = ["get_device", "seed_everything", "is_tiny", "tiny_or_full", "__version__", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"mmlab.{name}")
    raise AttributeError(f"module 'mmlab' has no attribute {name!r}")
