"""The candidate set ``A(tau)`` of the ReAD bandit (shared by LinUCB and the grid search).

``candidate_set(requirement, previous)`` returns float64 [M, K] allocations on the simplex, deduplicated,
in this order (first ``max_candidates`` kept):

1. ``previous`` itself (when given), the requirement ``r`` and uniform;
2. sparse allocations on the top-k required capabilities: one-hots (``include_one_hots``), every pair
   with weights from ``pair_weights`` (the paper's public code: pairs among the top-3 with {0.25, 0.5,
   0.75}), and the top-k triple with equal weights;
3. local perturbations of ``previous``: ``(1 - d) w + d e_i`` (move mass toward i) and the renormalized
   allocation with capability i scaled by ``(1 - d)`` (move mass away from i), for every i
   and every ``d`` in ``perturbation_sizes``.
"""

from __future__ import annotations

import itertools

import numpy as np

DEFAULT_PAIR_WEIGHTS = (0.25, 0.5, 0.75)
DEFAULT_PERTURBATIONS = (0.1, 0.25, 0.5)


def top_k_indices(requirement: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the ``top_k`` largest requirement weights (ties by lower index)."""
    return np.argsort(-requirement, kind="stable")[:top_k]


def candidate_set(
    requirement: np.ndarray,
    previous: np.ndarray | None = None,
    top_k: int = 3,
    pair_weights: tuple[float, ...] = DEFAULT_PAIR_WEIGHTS,
    perturbation_sizes: tuple[float, ...] = DEFAULT_PERTURBATIONS,
    include_one_hots: bool = True,
    max_candidates: int = 50,
) -> np.ndarray:
    """Candidate allocations [M, K], M <= max_candidates (see the module docstring)."""
    k = requirement.shape[0]
    eye = np.eye(k)
    top = top_k_indices(requirement, min(top_k, k))
    out: list[np.ndarray] = []
    if previous is not None:
        out.append(np.asarray(previous, dtype=np.float64))
    out += [np.asarray(requirement, dtype=np.float64), np.full(k, 1.0 / k)]
    if include_one_hots:
        out += [eye[i] for i in top]
    for first, second in itertools.combinations(top, 2):
        for weight in pair_weights:
            out.append(weight * eye[first] + (1.0 - weight) * eye[second])
    if len(top) > 2:
        out.append(eye[top].mean(axis=0))
    if previous is not None:
        base = np.asarray(previous, dtype=np.float64)
        for size in perturbation_sizes:
            for i in range(k):
                out.append((1.0 - size) * base + size * eye[i])
                away = base.copy()
                away[i] *= 1.0 - size
                if away.sum() > 0:
                    out.append(away)
    array = np.array(out)
    array = np.maximum(array, 0.0)
    array /= array.sum(axis=1, keepdims=True)
    _, first_index = np.unique(np.round(array, 9), axis=0, return_index=True)
    return array[np.sort(first_index)][:max_candidates]
