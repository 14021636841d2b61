"""JSON-able records, and the one per-step record that every consumer of the contract shares.

``STEP_INFO`` names the contract's per-step info (:class:`~read_env.allocation_env.AllocationEnv`), plus the
noise-free ``final_utility`` and ``initial_utility`` that ``ReAD-Surrogate-v1`` adds to an episode's last
step. :func:`step_record` keeps those keys as plain Python values: the trajectory recorder stores it as it is,
the agents' runner adds the reward and the measured profile, and ``ReAD-v0``'s history adds the backend's
info and its resume state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

STEP_INFO = ("allocation", "delta_profile", "gain", "spillover", "cost", "utility", "tokens_used", "tokens_used_total", "step", "final_utility", "initial_utility")


def to_jsonable(value: Any) -> Any:
    """numpy arrays and scalars (also inside dicts) as plain Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    return value


def step_record(info: Mapping[str, Any]) -> dict[str, Any]:
    """The ``STEP_INFO`` entries of a step's ``info`` that are present, as plain Python values."""
    return {key: to_jsonable(info[key]) for key in STEP_INFO if key in info}
