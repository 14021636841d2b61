"""TSCL, Teacher-Student Curriculum Learning (Matiisen et al. 2017; public code ``tambetm/TSCL``, ``addition/``).

The teacher is a bandit whose arms are tasks and whose value of an arm is the learning progress of the student
on it: the absolute slope of the task's score curve (absolute, so that forgetting draws attention back). Its
policy is a distribution over tasks, which the public code plays directly as the mixture of each training
batch; here it is the allocation.

Arms: the capabilities the card requires, ``{k : r_k > 0}`` (TSCL's tasks are subtasks chosen for the target
task; a capability the task does not weigh is not one of its subtasks). The score of arm k is its observed
profile ``s_k``, read after every step (every arm is trained a little each step, as with TSCL's mixed batches).

Variant: **Window** (the paper's Window teacher, ``WindowedSlopeBanditTeacher``), with the epsilon-greedy
policy; the paper found Window and Sampling best. Probe noise (sd ``sigma``, about 0.5 points) is as large as
a step's gain, and an episode has 20 steps. Sampling (Thompson) acts on one sampled score difference
(variance ``2 sigma^2``); Online's exponential average of differences (learning rate 0.1) averages as well as
Window (variance ``0.0105 sigma^2`` against ``sigma^2 / 82.5 = 0.012 sigma^2`` for a 10-score slope) but its
public code starts from a previous score of 0, so its first "difference" is the score itself, which still
weighs ``0.1 * 0.9^20 * s`` (about 0.006 for s = 0.5, more than a step's gain) at the end of an episode.
Window has neither problem. Equations, after step t (scores ``s_k(0) ... s_k(t)``)::

    slope_k = least-squares slope of s_k(u) on u over the last W steps u    (1 while fewer than 2 scores)
    a       = argmax_{k in arms} |slope_k|                                    (ties broken at random)
    w       = (1 - epsilon) e_a + epsilon / |arms| on the arms, 0 elsewhere

Constants of the public code: ``window_size = 10``, ``epsilon = 0.1`` (its defaults). The absolute slope is
the paper's rule; the code runs every teacher with and without it (``--abs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, Setting


@dataclass
class TSCLConfig:
    window: int = 10  # scores per arm in the slope regression
    epsilon: float = 0.1  # uniform exploration over the arms


def window_slopes(scores: np.ndarray) -> np.ndarray:
    """Least-squares slopes [K] of ``scores`` [N, K] (one row per step) on the step index; 1 when N < 2."""
    if len(scores) < 2:
        return np.ones(scores.shape[1])
    time = np.arange(len(scores), dtype=np.float64)
    centred = time - time.mean()
    return centred @ (scores - scores.mean(axis=0)) / (centred @ centred)


class TSCLAgent(Agent):
    name = "tscl"

    def __init__(self, setting: Setting, seed: int | None = None, **overrides: Any) -> None:
        super().__init__(setting, seed)
        self.config = TSCLConfig(**overrides)
        if self.config.window < 2 or not 0 <= self.config.epsilon <= 1:
            raise ValueError(f"TSCL needs window >= 2 and 0 <= epsilon <= 1, got {self.config}")
        # episode state (begin sets it)
        self.arms = np.arange(setting.num_capabilities)
        self.scores: list[np.ndarray] = []

    def begin(self, observation: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.arms = np.flatnonzero(observation["requirement"] > 0)
        self.scores = [observation["profile"]]  # s(0), s(1), ... [K] each

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        progress = np.abs(window_slopes(np.array(self.scores[-self.config.window :])))[self.arms]
        choice = self.arms[self.rng.choice(np.flatnonzero(progress == progress.max()))]
        allocation = np.zeros(self.setting.num_capabilities)
        allocation[self.arms] = self.config.epsilon / len(self.arms)
        allocation[choice] += 1.0 - self.config.epsilon
        return allocation

    def update(self, observation, action, reward, next_observation, info) -> None:
        self.scores.append(next_observation["profile"])
