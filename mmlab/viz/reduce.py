"""Dimensionality reduction for plots: PCA, UMAP and t-SNE behind one cached interface.

PCA (Pearson 1901) is a linear projection onto the top principal directions of the centred data
`X - mean`, computed here by an SVD `X_c = U Σ Vᵀ`, so coordinates are `X_c V[:, :dim]`; it takes
milliseconds and keeps distances along the kept directions. UMAP (McInnes et al. 2018,
arXiv:1802.03426) and t-SNE (van der Maaten & Hinton 2008) are non-linear and keep
neighbourhoods instead. The first UMAP call in a process pays numba compilation (~12 s for
2,000 points); computing the 15 nearest neighbours with scikit-learn and passing them as
`precomputed_knn`, with `n_epochs=200`, brings it to a few seconds.

Fits are cached by a hash of the data, the method, the dimension and the seed, so a notebook cell
that redraws a figure does not refit.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmlab._checks import check_choice, check_int

METHODS = ("pca", "umap", "tsne")
DIMS = (2, 3)
CACHE_SIZE = 16
UMAP_NEIGHBORS = 15
UMAP_EPOCHS = 200

_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_STATS = {"hits": 0, "misses": 0, "fits": 0}
_UMAP_WARMED = False


def as_numpy(name: str, x: Any) -> np.ndarray:
    """A 2-D float64 numpy array from a float tensor or array of shape (N, D), with a clear error.

    Integer, bool and complex inputs are rejected (a TypeError): embeddings are floats, and an
    integer array here is almost always labels or ids passed by mistake. Convert deliberately
    with `x.float()` / `x.astype(float)`.
    """
    if isinstance(x, Tensor):
        if not x.is_floating_point():
            raise TypeError(f"`{name}` must have a floating dtype (embeddings), got {x.dtype}; "
                            f"convert it with `{name}.float()` if this is intended.")
        x = x.detach().to("cpu", torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise TypeError(f"`{name}` must have a floating dtype (embeddings), got {x.dtype}; "
                            f"convert it with `{name}.astype(float)` if this is intended.")
        x = x.astype(np.float64, copy=False)
    else:
        raise TypeError(f"`{name}` must be a torch.Tensor or numpy array of shape (N, D), "
                        f"got {type(x).__name__}.")
    if x.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D of shape (N, D), got shape {tuple(x.shape)}.")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(x.shape)}); pass at least one point.")
    if not np.isfinite(x).all():
        raise ValueError(f"`{name}` (shape {tuple(x.shape)}) contains NaN or Inf values.")
    return x


def _pad(y: np.ndarray, dim: int) -> np.ndarray:
    """Pad with zero columns when the data has fewer than `dim` directions."""
    if y.shape[1] < dim:
        y = np.concatenate([y, np.zeros((y.shape[0], dim - y.shape[1]))], axis=1)
    return y


@dataclass
class Reducer:
    """Fit a 2-D or 3-D projection of (N, D) points.

    Args:
        method: "pca" (linear, fast, default), "umap" or "tsne" (non-linear, slower).
        dim: 2 or 3 output coordinates.
        seed: random seed for UMAP and t-SNE (PCA is deterministic).
    """

    method: str = "pca"
    dim: int = 2
    seed: int = 0
    mean_: np.ndarray | None = field(default=None, repr=False)
    components_: np.ndarray | None = field(default=None, repr=False)
    model_: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("dim", self.dim, DIMS)
        check_int("seed", self.seed, minimum=0)

    def fit_transform(self, x: Tensor | np.ndarray) -> np.ndarray:
        """Fit on `x` (N, D) and return its coordinates (N, dim) as float64 numpy."""
        x = as_numpy("x", x)
        _STATS["fits"] += 1
        if self.method == "pca" or x.shape[0] <= self.dim + 2:
            return self._fit_pca(x)
        if self.method == "umap":
            return self._fit_umap(x)
        return self._fit_tsne(x)

    def transform(self, x: Tensor | np.ndarray) -> np.ndarray:
        """Project new points with a fitted PCA or UMAP (t-SNE has no out-of-sample map)."""
        x = as_numpy("x", x)
        if self.components_ is not None:
            return _pad((x - self.mean_) @ self.components_.T, self.dim)  # (N, dim)
        if self.model_ is None:
            raise ValueError("This Reducer is not fitted yet; call `fit_transform(x)` first.")
        if self.method == "tsne":
            raise ValueError("t-SNE cannot project new points; fit on all points at once "
                             "(e.g. `reduce(torch.cat([a, b]), 'tsne')`).")
        return np.asarray(self.model_.transform(x), dtype=np.float64)

    def _fit_pca(self, x: np.ndarray) -> np.ndarray:
        self.mean_ = x.mean(axis=0)  # (D,)
        xc = x - self.mean_  # (N, D)
        _, _, vt = np.linalg.svd(xc, full_matrices=False)  # vt: (min(N, D), D)
        comps = vt[: self.dim]  # (k, D)
        # fix the sign: the largest |loading| of every component is positive (like sklearn)
        signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
        signs[signs == 0] = 1.0
        self.components_ = comps * signs[:, None]  # (k, D)
        return _pad(xc @ self.components_.T, self.dim)  # (N, dim)

    def _fit_umap(self, x: np.ndarray) -> np.ndarray:
        global _UMAP_WARMED
        import umap  # slow import (numba); only on request
        from sklearn.neighbors import NearestNeighbors

        n = x.shape[0]
        k = min(UMAP_NEIGHBORS, n - 1)
        if not _UMAP_WARMED:
            print(f"UMAP: first call in this kernel compiles numba code; this takes ~10-40 s for "
                  f"{n} points (later calls take seconds). PCA (method='pca') is instant.",
                  flush=True)
        dists, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)  # (N, k), self first
        self.model_ = umap.UMAP(n_components=self.dim, n_neighbors=k, n_epochs=UMAP_EPOCHS,
                                random_state=self.seed, precomputed_knn=(idx, dists, None))
        # expected: seeded runs are single-threaded; no NNDescent index
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(n_jobs value|knn_search_index).*",
                                    category=UserWarning)
            y = self.model_.fit_transform(x)
        _UMAP_WARMED = True
        return np.asarray(y, dtype=np.float64)

    def _fit_tsne(self, x: np.ndarray) -> np.ndarray:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(1.0, (x.shape[0] - 1) / 3)))
        self.model_ = TSNE(n_components=self.dim, perplexity=perplexity, init="pca",
                           random_state=self.seed)
        return np.asarray(self.model_.fit_transform(x), dtype=np.float64)


def _key(x: np.ndarray, method: str, dim: int, seed: int) -> tuple:
    digest = hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest()
    return (digest, x.shape, method, dim, seed)


def reduce(x: Tensor | np.ndarray, method: str = "pca", dim: int = 2, *, seed: int = 0,
           use_cache: bool = True) -> np.ndarray:
    """Project (N, D) points to (N, dim) coordinates, reusing a cached fit for identical input.

    Args:
        x: points, a float tensor or array of shape (N, D) (integer, bool and complex inputs are
            a TypeError: convert with `x.float()` first), with no NaN/Inf.
        method: "pca", "umap" or "tsne".
        dim: 2 or 3.
        seed: random seed for UMAP / t-SNE.
        use_cache: look the result up in (and store it into) the module's small LRU cache.
    Returns:
        float64 numpy array of shape (N, dim).
    """
    check_choice("method", method, METHODS)
    check_choice("dim", dim, DIMS)
    x = as_numpy("x", x)
    key = _key(x, method, dim, seed)
    if use_cache and key in _CACHE:
        _STATS["hits"] += 1
        _CACHE.move_to_end(key)
        return _CACHE[key].copy()
    _STATS["misses"] += 1
    y = Reducer(method, dim, seed).fit_transform(x)  # (N, dim)
    if use_cache:
        _CACHE[key] = y.copy()
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return y


def cache_info() -> dict[str, int]:
    """Counters of the reduction cache: hits, misses, fits (all Reducer fits) and current size."""
    return {**_STATS, "size": len(_CACHE)}


def clear_cache() -> None:
    """Empty the reduction cache and reset its counters."""
    _CACHE.clear()
    for k in _STATS:
        _STATS[k] = 0
