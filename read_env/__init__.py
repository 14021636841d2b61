"""read-env: budgeted LLM capability distillation as Gymnasium environments (the ReAD paper)."""

from read_env.capabilities import PAPER_CAPABILITIES
from read_env.registration import (
    DEFAULT_ENV_ID,
    ENV_IDS,
    FITTED_ID,
    FITTED_V1_ID,
    MINI_ID,
    MINI_V1_ID,
    MINI_V2_ID,
    REAL_ID,
    REAL_V1_ID,
    SURROGATE_ID,
    SURROGATE_V1_ID,
    SURROGATE_V2_ID,
    episode_defaults,
    register_envs,
)
from read_env.tasks import MULTI_CAPABILITY_TASKS, SINGLE_CAPABILITY_TASKS, TASKS, TaskCard

__all__ = [
    "DEFAULT_ENV_ID",
    "ENV_IDS",
    "FITTED_ID",
    "FITTED_V1_ID",
    "MINI_ID",
    "MINI_V1_ID",
    "MINI_V2_ID",
    "MULTI_CAPABILITY_TASKS",
    "PAPER_CAPABILITIES",
    "REAL_ID",
    "REAL_V1_ID",
    "SINGLE_CAPABILITY_TASKS",
    "SURROGATE_ID",
    "SURROGATE_V1_ID",
    "SURROGATE_V2_ID",
    "TASKS",
    "TaskCard",
    "episode_defaults",
    "register_envs",
]
__version__ = "0.1.0"

register_envs()
