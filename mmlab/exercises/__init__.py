"""Exercises that check the learner's own code (Kaggle Learn's convention).

    import mmlab.exercises as ex
    q = ex.get("info_nce")
    print(q.stub)        # the function to write: signature, docstring, `raise NotImplementedError`
    q.check(info_nce)    # runs it on random inputs against the library; prints a verdict; a bool
    q.hint(1); q.hint(2); q.solution()

`names()` lists the exercises, `by_notebook()` groups them by notebook, `get(name)` returns one
`Exercise`. A check never raises because of the learner's function and leaves torch's global
random state as it found it. See docs/EXERCISES.md.
"""

from __future__ import annotations

from mmlab.exercises import (attribution, clip, debugging, embedding, fewshot, fusion, geometry,
                             multiway, negatives, scaling, second_06_07, second_10_11,
                             temperature)
from mmlab.exercises._core import NOT_ATTEMPTED, Case, Exercise, Mistake

_MODULES = (embedding, geometry, clip, temperature, multiway, fusion, attribution, negatives,
            fewshot, scaling, debugging, second_06_07, second_10_11)

_REGISTRY: dict[str, Exercise] = {e.name: e for m in _MODULES for e in m.EXERCISES}

__all__ = ["get", "names", "by_notebook", "Exercise", "Case", "Mistake", "NOT_ATTEMPTED"]


def names(notebook: str | None = None) -> list[str]:
    """The exercise names, in notebook order (only those of `notebook`, e.g. "02", if given)."""
    found = sorted(_REGISTRY.values(), key=lambda e: e.notebook)
    return [e.name for e in found if notebook is None or e.notebook == str(notebook).zfill(2)]


def by_notebook() -> dict[str, list[str]]:
    """Notebook ("01" ... "11") → the names of its exercises."""
    out: dict[str, list[str]] = {}
    for name in names():
        out.setdefault(_REGISTRY[name].notebook, []).append(name)
    return out


def get(name: str) -> Exercise:
    """The exercise called `name` (see `names()`)."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise KeyError(f"no exercise named {name!r}; the exercises are: {', '.join(names())}.")
    return _REGISTRY[name]
