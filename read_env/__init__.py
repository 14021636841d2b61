"""read-env: budgeted LLM capability distillation as Gymnasium environments (the ReAD paper)."""

from read_env.capabilities import PAPER_CAPABILITIES
from read_env.registration import MINI_ID, MINI_V1_ID, REAL_ID, SURROGATE_ID, register_envs
from read_env.tasks import MULTI_CAPABILITY_TASKS, SINGLE_CAPABILITY_TASKS, TASKS, TaskCard

__all__ = [
    "MINI_ID",
    "MINI_V1_ID",
    "MULTI_CAPABILITY_TASKS",
    "PAPER_CAPABILITIES",
    "REAL_ID",
    "SINGLE_CAPABILITY_TASKS",
    "SURROGATE_ID",
    "TASKS",
    "TaskCard",
    "register_envs",
]
__version__ = "0.1.0"

register_envs()
