"""``ReAD-Mini-v0``, ``ReAD-Mini-v1`` and ``ReAD-Mini-v2``: real budgeted distillation in miniature, a tiny transformer student
on eight synthetic skills.

Dynamics of a step with allocation ``w`` [K] and ``n`` tokens (see :mod:`read_env.mini.backend`):

1. the tokens are split over capabilities by ``w`` (largest remainder, exact integers), plus the carried
   remainder of earlier steps;
2. the teacher (each family's exact solver, wrong at a documented rate per family: :mod:`read_env.mini.teacher`)
   answers training-split items of each capability within the capability's tokens: answer + EOS count as
   generated tokens (at most 40% of the allotment), prompt + answer tokens as training tokens, as in
   ``ReAD-v0``;
3. the student (:mod:`read_env.mini.student`, a Llama-style causal transformer of about 0.43M parameters,
   pre-trained and cached) trains one pass on the answers: cross-entropy with prompt tokens masked, AdamW
   (:class:`read_env.distill.training.Trainer`) with its state kept across steps;
4. the profile [K] is the mean score on ``probe_items`` held-out items per capability
   (``info["probe_stderr"]``: standard errors); task utility is ``r . score / sum(r)`` on ``eval_items`` other
   held-out items, measured every step (v2: validation items; and once after the last step on ``final_items``
   evaluation items, ``info["final_utility"]``).

The ids differ by options (``gym.make`` arguments override any id's defaults); ``ReAD-Mini-v2``
(:data:`V2_DEFAULTS`) is v1 with ``skills="v2"`` (:mod:`read_env.mini.skills_v2`: reasoning and steerability items
contain another capability's skill as a sub-step), ``item_streams=True`` (each capability's training items from
its own generator: common random numbers across allocations under one seed) and ``final_items=600`` (three
disjoint held-out sets: probe, validation for the per-step utility, evaluation after the last step; validation and
evaluation score only the task's required capabilities).

==================  ====================================================  ===================================================
option              ``ReAD-Mini-v0``                                      ``ReAD-Mini-v1`` (:data:`V1_DEFAULTS`)
==================  ====================================================  ===================================================
``skills``          ``"v0"``: :mod:`read_env.mini.families`, 3 levels     ``"v1"``: :mod:`read_env.mini.skills`, composed, 5 levels
student             2M tokens of the eight families, constant lr          3M tokens, 90% background text, warm-up + cosine lr
``difficulty``      1                                                     ``None``: every level, uniform
``metric``          ``"exact"`` match                                     ``"token"``: partial credit per answer position
``lr_schedule``     ``"constant"`` 5e-4, 32 sequences a batch             ``"warmup_cosine"`` over the budget, peak 3e-4, 8 a batch
``replay_share``    0                                                     0.5 of trained tokens replay pre-training data
``lora``            off                                                   off (an option, rank ``lora_r``)
budget, steps       1M tokens, 20 steps                                   80k tokens (2.7% of pre-training), 8 steps
held-out items      64 per capability                                     60 per capability (12 per level)
==================  ====================================================  ===================================================

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
from pathlib import Path
from typing import Any

import numpy as np

from read_env.distill.config import DistillerConfig
from read_env.distill.env import DistillationEnv
from read_env.distill.training import LR_SCHEDULES
from read_env.mini.families import check_difficulty
from read_env.mini.student import METRICS, SKILL_SETS, STUDENT_PRESETS, StudentConfig
from read_env.mini.teacher import check_error_rates

DEFAULT_BUDGET_TOKENS = 1_000_000
DEFAULT_NUM_STEPS = 20
_V0_TRAINING = {"metric": "exact", "lr_schedule": "constant", "warmup_share": 0.1, "replay_share": 0.0, "lora": False, "lora_r": 8,
                "item_streams": False, "final_items": 0}
"""Options added after ReAD-Mini-v0, with v0's values: the recorded configuration holds them only where they
differ, so v0's histories keep their configuration (and resume)."""
V1_DEFAULTS: dict[str, Any] = {
    "skills": "v1",
    "difficulty": None,
    "metric": "token",
    "lr": 3e-4,
    "batch_size": 8,
    "lr_schedule": "warmup_cosine",
    "replay_share": 0.5,
    "probe_items": 60,
    "eval_items": 60,
    "budget_tokens": 80_000,
    "num_steps": 8,
    "run_dir": "runs/ReAD-Mini-v1",
}
"""The options ``ReAD-Mini-v1`` is registered with."""
V2_DEFAULTS: dict[str, Any] = {
    **V1_DEFAULTS,
    "skills": "v2",
    "item_streams": True,
    "final_items": 600,
    "run_dir": "runs/ReAD-Mini-v2",
}
"""The options ``ReAD-Mini-v2`` is registered with: v1's, on the v2 skills (two capabilities with real
prerequisites), each capability's items from its own generator, and three disjoint held-out sets."""


class MiniEnv(DistillationEnv):
    """The contract of :class:`~read_env.allocation_env.AllocationEnv` on real distillation of a tiny student.

    Args (beyond the contract's):
        skills: ``"v0"`` or ``"v1"``, the skill set (:data:`read_env.mini.student.SKILL_SETS`); it also picks the
            student's defaults (:data:`read_env.mini.student.STUDENT_PRESETS`).
        difficulty: a level of the skill set (1-3 for v0, 1-5 for v1) of the training and held-out items of
            every family, or ``None`` for all levels.
        student: :class:`~read_env.mini.student.StudentConfig` options over the skill set's preset.
        teacher_error_rates: ``{capability: rate}`` overriding :data:`read_env.mini.teacher.ERROR_RATES`.
        metric: ``"exact"`` or ``"token"`` (:func:`read_env.mini.student.answer_scores`).
        lr, batch_size: the student's AdamW (peak) learning rate and sequences per optimizer step.
        lr_schedule, warmup_share: ``"constant"`` or ``"warmup_cosine"`` over the episode's budget.
        replay_share: share in [0, 1) of the trained tokens that replay pre-training data (outside the budget).
        lora, lora_r: train LoRA adapters (peft) of this rank instead of all weights.
        item_streams: each capability's training items from its own generator (common random numbers).
        final_items: 0, or evaluation items per capability scored once after the last step (needs a skill set with
            a validation split, ``"v2"``: the per-step utility then reads validation items).
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
    PROFILING_KWARGS = {"scratch": True}  # progress bars are always off here
    spends_remainder = False  # keeps ReAD-Mini-v0's published episodes as they were (its remainder: benchmarks/budget_remainder.py)

    def __init__(
        self,
        skills: str = "v0",
        difficulty: int | None = 1,
        student: Mapping[str, Any] | None = None,
        teacher_error_rates: Mapping[str, float] | None = None,
        metric: str = "exact",
        lr: float = 5e-4,
        batch_size: int = 32,
        lr_schedule: str = "constant",
        warmup_share: float = 0.1,
        replay_share: float = 0.0,
        lora: bool = False,
        lora_r: int = 8,
        item_streams: bool = False,
        final_items: int = 0,
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
        if skills not in SKILL_SETS:
            raise ValueError(f"skills must be one of {list(SKILL_SETS)}, got {skills!r}")
        training = {"metric": metric, "lr_schedule": lr_schedule, "warmup_share": warmup_share, "replay_share": replay_share, "lora": lora, "lora_r": lora_r,
                    "item_streams": item_streams, "final_items": final_items}
        check_training(training)
        if final_items and "validation" not in dict(next(iter(SKILL_SETS[skills][0].values())).splits):
            raise ValueError(f"final_items needs a skill set with a validation split (v2), got skills={skills!r}")
        config = DistillerConfig(lr=lr, batch_size=batch_size, micro_batch=batch_size, probe_items=probe_items, eval_items=eval_items,
                                 generation_share=generation_share, keep_after_episode="checkpoint", lora=lora, lora_r=lora_r)
        contract_args = {"budget_tokens": DEFAULT_BUDGET_TOKENS, "num_steps": DEFAULT_NUM_STEPS, **contract_args}
        super().__init__(distiller_config=config, device="cpu", run_dir=run_dir, resume=resume, utility_every=1, progress=False,
                         keep_episodes=keep_episodes, **contract_args)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.student_config = StudentConfig.from_options({**STUDENT_PRESETS[skills], **dict(student or {})})
        if self.student_config.skills != skills:
            raise ValueError(f"student skills {self.student_config.skills!r} differ from the environment's skills {skills!r}")
        if difficulty is not None:
            check_difficulty(difficulty, SKILL_SETS[skills][1])
        self.error_rates = check_error_rates(teacher_error_rates, self.capabilities)
        self.training = training
        self.config = {
            **self.config,
            "backend": "mini",
            **({"skills": skills} if skills != "v0" else {}),
            "difficulty": difficulty,
            "student": self.student_config.recorded(),
            **{name: value for name, value in training.items() if _V0_TRAINING[name] != value},
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
        if self.training["final_items"] and self._step + 1 == self.num_steps and not extra.get("truncated"):
            final = self.distiller.final_evaluation()
            extra |= {"final_utility": final.utility(self.requirement), "final_utility_stderr": final.utility_stderr(self.requirement),
                      "final_scores": final.scores, "final_stderr": final.stderr}
        return profile, utility, extra

    def _record(self, info: dict[str, Any]) -> dict[str, Any]:
        seconds, self._seconds = self._seconds, {}
        return {**super()._record(info), "seconds": seconds}

    def _make_distiller(self, episode_dir: Path, seed: int):
        import torch

        from read_env.mini.backend import MiniDistiller

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        training = {name: value for name, value in self.training.items() if name not in ("lora", "lora_r")}
        scored = self.requirement > 0 if self.training["final_items"] else None  # v2 scores only what task utility reads
        return MiniDistiller(self.capabilities, self.distiller_config, episode_dir, seed=seed, student=self.student_config, error_rates=self.error_rates,
                             difficulty=self.config["difficulty"], budget_tokens=self.budget_tokens, cache_dir=self.cache_dir, scored=scored, **training)


class MiniV1Env(MiniEnv):
    """``ReAD-Mini-v1``: a :class:`MiniEnv` with :data:`V1_DEFAULTS` under the caller's options."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**{**V1_DEFAULTS, **options})


class MiniV2Env(MiniEnv):
    """``ReAD-Mini-v2``: a :class:`MiniEnv` with :data:`V2_DEFAULTS` under the caller's options."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**{**V2_DEFAULTS, **options})


def check_training(options: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming a bad training option (metric, lr_schedule, warmup_share, replay_share, lora, lora_r,
    item_streams, final_items)."""
    if options["metric"] not in METRICS or options["lr_schedule"] not in LR_SCHEDULES:
        raise ValueError(f"metric must be one of {list(METRICS)} and lr_schedule one of {list(LR_SCHEDULES)}, got {options['metric']!r}, {options['lr_schedule']!r}")
    if not 0.0 <= options["warmup_share"] < 1.0 or not 0.0 <= options["replay_share"] < 1.0:
        raise ValueError(f"warmup_share and replay_share must be in [0, 1), got {options['warmup_share']!r}, {options['replay_share']!r}")
    if not isinstance(options["lora"], bool) or isinstance(options["lora_r"], bool) or not isinstance(options["lora_r"], int) or options["lora_r"] < 1:
        raise ValueError(f"lora must be a bool and lora_r a positive integer, got {options['lora']!r}, {options['lora_r']!r}")
    final_items = options["final_items"]
    if not isinstance(options["item_streams"], bool) or isinstance(final_items, bool) or not isinstance(final_items, int) or final_items < 0:
        raise ValueError(f"item_streams must be a bool and final_items a non-negative integer, got {options['item_streams']!r}, {final_items!r}")
