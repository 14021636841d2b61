"""Shared settings of the agents tests."""

import numpy as np

import read_env  # noqa: F401  (registers the environments)

FAST_BANDIT = {"refit_steps": 10, "batch_size": 16}


def observation(k: int = 8, budget_left: float = 1.0) -> dict:
    """A valid observation of a K-capability environment (requirement one-hot on the first capability)."""
    return {
        "profile": np.full(k, 0.5, np.float32),
        "requirement": np.eye(k, dtype=np.float32)[0],
        "budget_left": np.array([budget_left], np.float32),
        "last_allocation": np.zeros(k, np.float32),
        "last_gain": np.zeros(k, np.float32),
    }

