"""Retrieval and geometry metrics for multimodal embeddings.

- `retrieval`: `similarity`, `recall_at_k`, `mean_reciprocal_rank`, `median_rank`, `ranks`
  (chunked) and `retrieval_report` (both directions, a flat dict of floats). Python floats.
  Ties count in expectation over a random order of the tied items (`ties`: the closed forms).
- `geometry`: `alignment`, `uniformity` (Wang & Isola, 2020), `modality_gap`, `gap_vector`,
  `mean_pairwise_cosine` (Liang et al., 2022), `effective_rank` (Roy & Vetterli, 2007).
  0-d tensors that keep the graph, usable as regularisers.
- `probes`: `linear_probe` and `zero_shot_accuracy` (Radford et al., 2021). Python floats.
- `fewshot`: `sample_k_shot`, `prompt_ensemble`, `zero_shot_predict`, `few_shot_probe` (optionally
  with class-name embeddings as extra examples; Lin et al., 2023) and `few_shot_curve`.
- `classification`: `accuracy(scores, labels, k=1)`, top-1 / top-k accuracy. A Python float.
- `multiway`: `multiway_scores(x, y, gallery, multiway=True)`, two modalities query a third with
  Symile's multilinear inner product (or summed dot products); a (B, N) score matrix.
"""

from mmlab.metrics.classification import accuracy
from mmlab.metrics.fewshot import (few_shot_curve, few_shot_probe, prompt_ensemble, sample_k_shot,
                                   zero_shot_predict)
from mmlab.metrics.geometry import (alignment, effective_rank, gap_vector, mean_pairwise_cosine,
                                    modality_gap, uniformity)
from mmlab.metrics.multiway import multiway_scores
from mmlab.metrics.probes import linear_probe, zero_shot_accuracy
from mmlab.metrics.retrieval import (mean_reciprocal_rank, median_rank, ranks, recall_at_k,
                                     retrieval_report, similarity)

__all__ = ["similarity", "recall_at_k", "mean_reciprocal_rank", "median_rank", "ranks",
           "retrieval_report", "alignment", "uniformity", "modality_gap", "gap_vector",
           "effective_rank", "mean_pairwise_cosine", "linear_probe", "zero_shot_accuracy",
           "accuracy", "multiway_scores", "sample_k_shot", "prompt_ensemble", "zero_shot_predict",
           "few_shot_probe", "few_shot_curve"]
