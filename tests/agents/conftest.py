"""Shared settings of the agents tests."""

import os

import numpy as np
import pytest

import read_env  # noqa: F401  (registers the environments)

FAST_BANDIT = {"refit_steps": 10, "batch_size": 16}
TINY_IDENTIFIER = {"hidden_size": 8, "num_layers": 1, "num_heads": 1, "intermediate_size": 8, "mlp_size": 8, "train_cards": 20,
                   "heldout_cards": 2, "interventions_per_card": 2, "steps": 5}


@pytest.fixture(scope="session", autouse=True)
def identifier_cache(tmp_path_factory):
    """Identifiers trained by the tests are cached in a temporary folder, not the user's cache."""
    saved = os.environ.get("READ_ENV_CACHE")
    os.environ["READ_ENV_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if saved is None:
        os.environ.pop("READ_ENV_CACHE")
    else:
        os.environ["READ_ENV_CACHE"] = saved


def observation(k: int = 8, budget_left: float = 1.0) -> dict:
    """A valid observation of a K-capability environment (requirement one-hot on the first capability)."""
    return {
        "profile": np.full(k, 0.5, np.float32),
        "requirement": np.eye(k, dtype=np.float32)[0],
        "budget_left": np.array([budget_left], np.float32),
        "last_allocation": np.zeros(k, np.float32),
        "last_gain": np.zeros(k, np.float32),
    }

