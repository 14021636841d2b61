"""``ReAD-Mini-v0``: real budgeted distillation in miniature, a tiny transformer student on eight synthetic skills.

Dynamics of a step with allocation ``w`` [K] and ``n`` tokens (see :mod:`read_env.mini.backend`):

1. the tokens are split over capabilities by ``w`` (largest remainder, exact integers), plus the carried
   remainder of earlier steps;
2. the teacher (each family's exact solver, wrong at a documented rate per family: :mod:`read_env.mini.teacher`)
   answers training-split items of each capability (:mod:`read_env.mini.families`) within the capability's
   tokens: answer + EOS count as generated tokens (at most 40% of the allotment), prompt + answer tokens as
   training tokens, as in ``ReAD-v0``;
3. the student (:mod:`read_env.mini.student`, a Llama-style causal transformer of about 0.43M parameters,
   pre-trained to partial skill and cached) trains one pass on the answers: cross-entropy with prompt tokens
   masked, AdamW with a learning rate of 5e-4 kept across steps (:class:`read_env.distill.training.Trainer`);
4. the profile [K] is the exact-match accuracy under greedy decoding on ``probe_items`` held-out items per
   capability (``info["probe_stderr"]``: binomial standard errors); task utility is ``r . accuracy`` on
   ``eval_items`` other held-out items, measured every step.

Nothing about transfer between capabilities is written in: it comes from the student's shared weights and the
families' shared structure. Episodes start from the same pre-trained checkpoint; a seed fixes item sampling
and batch order. Under a seed an episode is bit-exact on one machine (CPU, ``threads`` torch threads; the
environment sets ``torch.set_num_threads(threads)`` process-wide at reset when ``threads`` is not ``None``).

Run folders as ``ReAD-v0`` (:class:`read_env.distill.env.DistillationEnv`): ``run_dir/episode-NNNN/`` holds
``history.jsonl``, ``ledger.jsonl`` and the last step's checkpoint (kept when the episode ends);
``resume=True`` lets the first reset continue an episode killed mid-way, and the reset after a step truncated
by a failure (a full disk) continue that episode, with no token lost or counted twice.
The first record of a history holds the configuration, including the teacher's expected profile
(``teacher_profile``) for ``read-env fit-world``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from read_env.distill.config import DistillerConfig
from read_env.distill.env import DistillationEnv
from read_env.mini.families import check_difficulty
from read_env.mini.student import StudentConfig
from read_env.mini.teacher import check_error_rates

DEFAULT_BUDGET_TOKENS = 1_000_000
DEFAULT_NUM_STEPS = 20


class MiniEnv(DistillationEnv):
    """The contract of :class:`~read_env.allocation_env.AllocationEnv` on real distillation of a tiny student.

    Args (beyond the contract's):
        difficulty: 1, 2 or 3, of the training and held-out items of every family.
        student: :class:`~read_env.mini.student.StudentConfig` options (sizes, pre-training tokens, seed).
        teacher_error_rates: ``{capability: rate}`` overriding :data:`read_env.mini.teacher.ERROR_RATES`.
        lr, batch_size: the student's AdamW learning rate and sequences per optimizer step.
        probe_items, eval_items: held-out items per capability for the profile and for task utility.
        generation_share: share of each capability's tokens that caps teacher generation.
        cache_dir: where pre-trained students are cached (default ``$READ_ENV_MINI_CACHE`` or
            ``~/.cache/read_env/mini``).
        run_dir, resume, keep_episodes: run folders, resume after a kill or a failure, and how many finished
            episodes to keep, as ``ReAD-v0``.
        threads: torch threads set at reset (``None``: leave them).
        **contract_args: the contract's arguments (:class:`~read_env.allocation_env.AllocationEnv`); here the
            defaults are ``budget_tokens=1_000_000`` and ``num_steps=20``.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    spends_remainder = False  # keeps ReAD-Mini-v0's published episodes as they were (its remainder: benchmarks/budget_remainder.py)

    def __init__(
        self,
        difficulty: int = 1,
        student: Mapping[str, Any] | None = None,
        teacher_error_rates: Mapping[str, float] | None = None,
        lr: float = 5e-4,
        batch_size: int = 32,
        probe_items: int = 64,
        eval_items: int = 64,
        generation_share: float = 0.4,
        cache_dir: str | None = None,
        run_dir: str = "runs/ReAD-Mini-v0",
        resume: bool = True,
        keep_episodes: int | None = None,
        threads: int | None = 1,
        **contract_args: Any,
    ) -> None:
        config = DistillerConfig(lr=lr, batch_size=batch_size, micro_batch=batch_size, probe_items=probe_items, eval_items=eval_items,
                                 generation_share=generation_share, keep_after_episode="checkpoint")
        contract_args = {"budget_tokens": DEFAULT_BUDGET_TOKENS, "num_steps": DEFAULT_NUM_STEPS, **contract_args}
        super().__init__(distiller_config=config, device="cpu", run_dir=run_dir, resume=resume, utility_every=1, progress=False,
                         keep_episodes=keep_episodes, **contract_args)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.student_config = StudentConfig.from_options(dict(student or {}))
        self.error_rates = check_error_rates(teacher_error_rates, self.capabilities)
        self.config = {
            **self.config,
            "backend": "mini",
            "difficulty": check_difficulty(difficulty),
            "student": asdict(self.student_config),
            "teacher_error_rates": self.error_rates.tolist(),
            "teacher_profile": (1.0 - self.error_rates).tolist(),
        }
        self.cache_dir, self.threads = cache_dir, threads
        self._seconds: dict[str, float] = {}

    def _check_models(self) -> None:
        """Nothing to check: the teacher is an exact solver and the student is built from ``student``."""

    def _distill(self, allocation: np.ndarray, tokens: int) -> tuple[np.ndarray, float, dict[str, Any]]:
        profile, utility, extra = super()._distill(allocation, tokens)
        self._seconds = extra.pop("seconds", {})  # wall-clock timings go to the history only: info stays deterministic
        return profile, utility, extra

    def _record(self, info: dict[str, Any]) -> dict[str, Any]:
        seconds, self._seconds = self._seconds, {}
        return {**super()._record(info), "seconds": seconds}

    def _make_distiller(self, episode_dir: Path, seed: int):
        import torch

        from read_env.mini.backend import MiniDistiller

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        return MiniDistiller(self.capabilities, self.distiller_config, episode_dir, seed=seed, student=self.student_config,
                             error_rates=self.error_rates, difficulty=self.config["difficulty"], cache_dir=self.cache_dir)
