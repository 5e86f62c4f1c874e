"""Notebook 09 (a pretrained anchor): zero-shot prediction and prompt ensembling (CLIP).

- Zero-shot (Radford et al. 2021): ŷ_i = argmax_c cos(x_i, e_c).
- Prompt ensembling: e_c = normalise(Σ_t normalise(e_{t,c})).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, label, rows
from mmlab.metrics import prompt_ensemble, zero_shot_predict

_IMPORTS = "import torch\nimport torch.nn.functional as F\n\n\n"


def _zero_shot_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for N, C, D, dtype in ((12, 3, 5, F64), (7, 4, 3, F32), (1, 2, 4, F64), (20, 6, 8, F32)):
        centres = rows(gen, C, D, F64)  # class embeddings of very different norms
        x = rows(gen, N, D, F64) + centres[torch.randint(C, (N,), generator=gen)]
        out.append(Case(label(N=N, C=C, D=D, dtype=dtype),
                        {"x": x.to(dtype), "class_embeddings": centres.to(dtype)}))
    return out


ZERO_SHOT_PREDICT = Exercise(
    name="zero_shot_predict", notebook="09",
    signature="zero_shot_predict(x, class_embeddings) -> (N,) int64 tensor",
    summary="Zero-shot classification: each row's class is the class embedding of highest cosine.",
    stub=_IMPORTS + '''def zero_shot_predict(x, class_embeddings):
    """Zero-shot classification by class names (CLIP): ŷ_i = argmax_c cos(x_i, e_c).

    x: (N, D) float tensor of sample embeddings; class_embeddings: (C, D), one per class
        (e.g. the text embedding of its name). Neither is normalised yet.
    Returns an (N,) int64 tensor of class ids in [0, C).
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def zero_shot_predict(x, class_embeddings):
    cos = F.normalize(x, dim=1) @ F.normalize(class_embeddings, dim=1).T   # (N, C)
    return cos.argmax(dim=1)                                               # (N,) best class''',
    hints=("Compare every sample with every class by cosine: normalise both, then an (N, C) "
           "matrix product.",
           "The prediction for row i is the column with the highest cosine: .argmax(dim=1). "
           "Without normalising the classes, a class embedding with a large norm wins too often."),
    reference=lambda x, e: zero_shot_predict(x, e),
    reference_name="mmlab.metrics.zero_shot_predict(x, class_embeddings)",
    make_cases=_zero_shot_cases, output="index", differentiable=False,
    mistakes=(
        Mistake("no L2 normalisation of the class embeddings: the raw dot product favours "
                "classes whose embedding is long. Compare by cosine.",
                lambda x, e: (x @ e.T).argmax(dim=1)),
        Mistake("the lowest score instead of the highest (argmin).",
                lambda x, e: (F.normalize(x, dim=1) @ F.normalize(e, dim=1).T).argmin(dim=1)),
        Mistake("the nearest class by Euclidean distance between raw vectors; zero-shot "
                "compares directions (cosines).", lambda x, e: torch.cdist(x, e).argmin(dim=1)),
    ),
)


def _prompt_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for T, C, D, dtype in ((4, 3, 5, F64), (2, 5, 3, F32), (1, 2, 4, F64), (6, 4, 8, F32)):
        names = rows(gen, C, D, F64)
        e = torch.stack([rows(gen, C, D, F64) * 0.6 + names for _ in range(T)])  # (T, C, D)
        e = e * (0.2 + 3 * torch.rand(T, 1, 1, generator=gen, dtype=F64))  # templates' norms
        out.append(Case(label(T=T, C=C, D=D, dtype=dtype), {"prompt_embeddings": e.to(dtype)},
                        grad=("prompt_embeddings",)))
    return out


PROMPT_ENSEMBLE = Exercise(
    name="prompt_ensemble", notebook="09",
    signature="prompt_ensemble(prompt_embeddings) -> (C, D) tensor",
    summary="CLIP's prompt ensembling: e_c = normalise(Σ_t normalise(e_{t,c})).",
    stub=_IMPORTS + '''def prompt_ensemble(prompt_embeddings):
    """One embedding per class from several prompt templates (Radford et al. 2021).

    prompt_embeddings: (T, C, D) float tensor, the embedding of template t filled with the
        name of class c ("a photo of a {}", "the digit {}", ...).
    Returns a (C, D) tensor of unit rows: e_c = normalise(Σ_t normalise(e_{t,c})).
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def prompt_ensemble(prompt_embeddings):
    unit = F.normalize(prompt_embeddings, dim=-1)      # (T, C, D): every prompt on the sphere
    return F.normalize(unit.sum(dim=0), dim=-1)        # (C, D): sum over the templates''',
    hints=("Normalise every prompt embedding first (dim=-1), so that no template outweighs "
           "the others because its vector is long.",
           "Sum (or average) over the templates, dim=0, and normalise the result again."),
    reference=lambda e: prompt_ensemble(e),
    reference_name="mmlab.metrics.prompt_ensemble(prompt_embeddings)",
    make_cases=_prompt_cases,
    mistakes=(
        Mistake("the prompts are not normalised before averaging, so long embeddings count "
                "more; normalise each one first.",
                lambda e: F.normalize(e.sum(dim=0), dim=-1)),
        Mistake("the result is not normalised: the class embeddings must be unit vectors.",
                lambda e: F.normalize(e, dim=-1).mean(dim=0)),
        Mistake("the result is not normalised: the class embeddings must be unit vectors.",
                lambda e: F.normalize(e, dim=-1).sum(dim=0)),
    ),
)

EXERCISES = (ZERO_SHOT_PREDICT, PROMPT_ENSEMBLE)
