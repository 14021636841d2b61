"""The environment contract shared by every ReAD environment: spaces, the action map, budget and reward.

Functions take arrays with a leading batch shape ``[..., K]`` so single and vector environments share them.

Action map (``action_mode="logits"``, the default): ``x`` in [-1, 1]^K becomes the allocation
``w = softmax(x / logit_temperature)``. With the default temperature 0.25 one entry at +1 and the others at
-1 gives ``w_max = 0.9977``, so near one-hot allocations are reachable (a plain softmax caps at 0.51 for K=8);
``x = 0`` is uniform. ``action_mode="simplex"``: ``x`` in [0, 1]^K is the allocation itself and must sum to 1
within ``SIMPLEX_ATOL`` (it is then renormalized exactly).

Budget: ``budget_tokens`` are spent over ``num_steps`` steps, ``budget_tokens // num_steps`` each, the first
``budget_tokens % num_steps`` steps one token more, so the episode spends exactly the budget.

Proxy reward (the paper's): ``R = r . ds - beta * spill - cost_weight * cost`` where ``ds`` is the measured
profile change, ``spill = sum_{c in top-k of r} r_c * max(0, -ds_c)`` and ``cost`` is the step's share of
the total budget (tokens_step / budget_tokens), so ``cost_weight`` is the price of the whole budget in utility
units whatever the budget's scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from read_env.tasks import SIMPLEX_ATOL

ACTION_MODES = ("logits", "simplex")
DEFAULT_LOGIT_TEMPERATURE = 0.25
MIN_LOGIT_TEMPERATURE = 0.01
DEFAULT_BETA = 0.5
DEFAULT_TOP_K = 3
DEFAULT_COST_WEIGHT = 0.01
LOGIT_SLACK = 1e-6
"""Logit actions may exceed [-1, 1] by this much (float rounding of a policy's clipped output)."""


def observation_space(num_capabilities: int) -> spaces.Dict:
    """Dict of float32 boxes: profile, requirement, last_allocation in [0,1]^K; budget_left in [0,1]; last_gain in [-1,1]^K."""
    k = num_capabilities
    unit = spaces.Box(0.0, 1.0, (k,), np.float32)
    return spaces.Dict(
        {
            "profile": unit,
            "requirement": spaces.Box(0.0, 1.0, (k,), np.float32),
            "budget_left": spaces.Box(0.0, 1.0, (1,), np.float32),
            "last_allocation": spaces.Box(0.0, 1.0, (k,), np.float32),
            "last_gain": spaces.Box(-1.0, 1.0, (k,), np.float32),
        }
    )


def action_space(num_capabilities: int, action_mode: str) -> spaces.Box:
    """Box(-1, 1, (K,)) for logits, Box(0, 1, (K,)) for simplex allocations."""
    low = -1.0 if action_mode == "logits" else 0.0
    return spaces.Box(low, 1.0, (num_capabilities,), np.float32)


def allocation_from_action(action: object, action_mode: str, temperature: float, shape: tuple[int, ...]) -> np.ndarray:
    """Validate an action of ``shape`` [..., K] and map it to float64 allocations [..., K] on the simplex.

    Raises ``TypeError`` for non-numeric dtypes and ``ValueError`` for a wrong shape, non-finite entries,
    logits outside [-1, 1], or simplex actions that are negative or do not sum to 1.
    """
    array = action_array(action, shape)
    if action_mode == "logits":
        peak = float(np.abs(array).max())
        if not peak <= 1.0 + LOGIT_SLACK:  # also catches NaN
            problem = "finite" if not np.isfinite(array).all() else "in [-1, 1]"
            raise ValueError(f"logit actions must be {problem}, got {array.tolist()}")
        exponent = np.exp(np.multiply(array, 1.0 / temperature, dtype=np.float64))
        return exponent / exponent.sum(axis=-1, keepdims=True)
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"action must be finite, got {array.tolist()}")
    if (array < 0).any():
        raise ValueError(f"simplex actions must be non-negative, got {array.tolist()}")
    total = array.sum(axis=-1, keepdims=True)
    if (np.abs(total - 1.0) > SIMPLEX_ATOL).any():
        raise ValueError(f"simplex actions must sum to 1 (within {SIMPLEX_ATOL}), sums are {total.ravel().tolist()}")
    return array / total


def action_array(action: object, shape: tuple[int, ...]) -> np.ndarray:
    """``action`` as an array of ``shape``; ``TypeError`` for a non-numeric dtype, ``ValueError`` for a wrong shape."""
    array = np.asarray(action)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"action must be a real numeric array, got dtype {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"action must have shape {shape}, got {array.shape}")
    return array


def step_tokens(budget_tokens: int, num_steps: int) -> np.ndarray:
    """Integer tokens per step [num_steps], summing exactly to ``budget_tokens``."""
    base, extra = divmod(budget_tokens, num_steps)
    return base + (np.arange(num_steps) < extra).astype(np.int64)


def essential_mask(requirement: np.ndarray, top_k: int) -> np.ndarray:
    """Boolean [..., K]: the ``top_k`` largest requirement weights (ties by lower index; all when top_k >= K)."""
    order = np.argsort(-requirement, axis=-1, kind="stable")
    return np.argsort(order, axis=-1, kind="stable") < top_k  # each entry's rank


def reward_terms(requirement: np.ndarray, delta: np.ndarray, essential_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gain ``r . ds``, spillover) [...]; ``essential_weight`` is ``r`` masked to its top-k entries."""
    gain = (requirement * delta).sum(axis=-1)
    spill = (essential_weight * np.maximum(0.0, -delta)).sum(axis=-1)
    return gain, spill


def step_feedback(
    requirement: np.ndarray, essential_weight: np.ndarray, delta: np.ndarray, tokens: int | np.ndarray, budget_tokens: int, beta: float, cost_weight: float
) -> tuple[Any, Any, Any, Any]:
    """``(reward, gain, spillover, cost)`` [...] of a step with measured profile change ``delta`` [..., K] and
    ``tokens`` [...] spent (see the module docstring); shared by single and vector environments."""
    gain, spill = reward_terms(requirement, delta, essential_weight)
    cost = tokens / budget_tokens
    return gain - beta * spill - cost_weight * cost, gain, spill, cost


def step_info(allocation: Any, delta: Any, gain: Any, spill: Any, cost: Any, utility: Any, tokens: Any, tokens_total: Any, step: Any, task: Any) -> dict[str, Any]:
    """The contract's per-step ``info`` (single values, or arrays [N, ...] for a vector of environments)."""
    return {
        "allocation": allocation,
        "delta_profile": delta,
        "gain": gain,
        "spillover": spill,
        "cost": cost,
        "utility": utility,
        "tokens_used": tokens,
        "tokens_used_total": tokens_total,
        "step": step,
        "task": task,
    }


def check_config(budget_tokens: object, num_steps: object, action_mode: str, temperature: float, beta: float, top_k: int, cost_weight: float) -> None:
    """Raise ``ValueError``/``TypeError`` naming the first bad environment argument."""
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, (int, np.integer)):
        raise TypeError(f"budget_tokens must be an integer number of tokens, got {budget_tokens!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
        raise TypeError(f"num_steps must be an integer, got {num_steps!r}")
    if budget_tokens <= 0:
        raise ValueError(f"budget_tokens must be positive, got {budget_tokens}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    if num_steps > budget_tokens:
        raise ValueError(f"num_steps={num_steps} exceeds budget_tokens={budget_tokens}: a step needs at least one token")
    if action_mode not in ACTION_MODES:
        raise ValueError(f"unknown action_mode {action_mode!r}; expected one of {list(ACTION_MODES)}")
    if not temperature >= MIN_LOGIT_TEMPERATURE:
        raise ValueError(f"logit_temperature must be at least {MIN_LOGIT_TEMPERATURE}, got {temperature}")
    if not (beta >= 0 and cost_weight >= 0):
        raise ValueError(f"beta and cost_weight must be non-negative, got {beta}, {cost_weight}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
