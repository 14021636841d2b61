"""``ReAD-v0``: real budgeted distillation of a student LM from a teacher LM, one allocation per step.

A step (see :class:`read_env.distill.distiller.Distiller` for the details and the exact token rule):

1. the step's tokens are split over capabilities by the allocation (largest remainder, exact integers);
2. the teacher answers capability-targeted prompts within each capability's generation tokens;
3. the student trains on the answers (prompt tokens masked) within the training tokens;
4. probes measure the student's profile [K] in [0, 1] (standard errors in ``info["probe_stderr"]``);
5. task utility (``r . held-out scores``) is measured after reset, every ``utility_every`` steps and at the
   end; between measurements ``info["utility"]`` repeats the last one (``info["utility_measured"]``). With each
   measurement (and at reset) ``info["utility_stderr"]`` is its standard error and ``info["eval_stderr"]`` [K]
   those of the capabilities' held-out scores (from the items' sample variance:
   :class:`~read_env.distill.evaluation.EvalResult`; NaN for a capability of fewer than 2 items). With
   ``DistillerConfig.item_source="full_splits"`` the reset's ``info["decontamination"]`` reports the probe and
   evaluation items the n-gram check removed (:func:`~read_env.distill.decontamination.decontamination_report`)
   and ``info["items"]`` the probe and evaluation items used per capability (``{"probe": [K], "eval": [K]}``).

Token accounting: ``info["tokens_used_total"]`` is the budget handed to the backend so far (the contract's
count, equal to the ledger's allotted total), ``info["tokens_spent_total"]`` what the teacher generated and
the student trained on (the ledger's spent total, never more), ``info["tokens_carried"]`` the rest, carried
into the next step; the last step spends what its capabilities leave on more answers of the most-allotted
ones (``DistillationEnv.spends_remainder``; ``ReAD-Mini-v0`` turns it off to keep its published episodes),
and what it still leaves (less than the shortest next prompt plus two tokens) is the budget left unspent.

Runs survive (the folders are kept by :class:`~read_env.distill.run_store.RunStore`): each episode writes
``run_dir/episode-NNNN/`` (created once its reset succeeded) with
``history.jsonl`` (one JSON object per completed step, step 0 = reset), the distiller's ``ledger.jsonl``
and ``checkpoint-T`` for the last completed step ``T`` only (crash-safe writes; the previous checkpoint is
deleted only after the next one and its history line are on disk). History and ledger lines are written
whole or not at all, even on a full disk (:mod:`read_env.distill.safe_files`). A finished episode keeps
``DistillerConfig.keep_after_episode`` (default: the student's weights in ``final/``). With ``resume=True``
the first ``reset()`` of an environment continues the newest unfinished episode of ``run_dir`` (one killed
with its process, or truncated by a failure) from its last completed step, with the ledger of that step, so
no token is lost or counted twice (the seed passed to that reset is then unused); so does the ``reset()``
that follows a truncated step on the same environment.

``step()`` does not raise on backend failures: out-of-memory halves the micro-batch and retries (inside the
trainer); any other error at any point of the step (a full disk while writing the ledger, the checkpoint or
the history line, an unreachable teacher server) ends the episode with ``truncated=True`` and
``info["error"]`` (the cause, naming the file or URL, and what the next ``reset()`` does), the distiller
rolled back to the last completed step and the files left as they were after it; that step spends nothing
and ``step()`` then raises until ``reset()``. Models are loaded once per environment and reused by its later
episodes and by later environments of the process with the same model settings
(:func:`~read_env.distill.models.shared_models`), which also reuse the untrained student's measurement.

Scratch episodes (``scratch=True``, what profiling runs use: ``PROFILING_KWARGS``) run in a temporary
``run_dir/scratch-*/`` folder that is deleted when the episode ends, write no checkpoint after
``checkpoint-0``, measure no task utility after reset (``info["utility"]`` repeats the start reading) and
never resume; profiles, rewards and token counts are those of a normal episode.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from read_env.allocation_env import AllocationEnv, StepResult
from read_env.distill.config import DistillerConfig
from read_env.distill.run_store import RunStore, read_history
from read_env.records import to_jsonable

__all__ = ["DistillationEnv", "read_history"]
DEFAULT_BUDGET_TOKENS = 12_000
DEFAULT_NUM_STEPS = 6


class DistillationEnv(AllocationEnv):
    """The contract of :class:`~read_env.allocation_env.AllocationEnv` on real teacher -> student distillation.

    Args (beyond the contract's):
        teacher, student, objective, lora, teacher_engine, teacher_url, teacher_pool: the :class:`DistillerConfig`
            fields of the same names, when given (they override ``distiller_config``); ``teacher_pool`` (a pool
            folder or ``"auto"``) also sets ``prompt_streams=True``.
        distiller_config: a :class:`~read_env.distill.config.DistillerConfig` or its JSON dict (unknown keys
            raise at construction); a dict applies on top of ``preset``, a ``DistillerConfig`` replaces it.
        preset: the ``DistillerConfig`` options an id sets (``ReAD-v0``: none; ``ReAD-v1``:
            :data:`~read_env.registration.REAL_V1_OPTIONS`).
        device: ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ... (checked at construction).
        run_dir: folder of the episodes' histories, ledgers and checkpoints.
        resume: let the first ``reset()`` continue an unfinished episode in ``run_dir``, and the ``reset()``
            after a truncated step continue the truncated episode.
        utility_every: measure task utility every this many steps (0: only after reset and at the end).
        progress: show a progress bar during ``reset()`` (loading models, teacher references, measurements:
            minutes for the embedded models on a CPU the first time).
        keep_episodes: when an episode finishes, delete the oldest finished episode folders of ``run_dir`` but
            this many (``None``: keep all; unfinished episodes are always kept).
        scratch: throwaway episodes that keep nothing on disk (see the module docstring).
        **contract_args: the contract's arguments (:class:`~read_env.allocation_env.AllocationEnv`); here the
            defaults are ``budget_tokens=12_000`` and ``num_steps=6``.

    Every argument is checked here, and an error names it; an ``"openai"`` teacher server must answer within
    :data:`~read_env.distill.engines.openai_server.REACH_TIMEOUT_S` seconds.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    spends_remainder = True  # the last step spends what the capabilities' allotments left (Distiller.distill(final=True))
    PROFILING_KWARGS = {"scratch": True, "progress": False}
    """Keyword arguments of the environments an agent's profiling runs are made with (read by
    :mod:`agents.policies.profiling`)."""

    def __init__(
        self,
        teacher: str | None = None,
        student: str | None = None,
        objective: str | None = None,
        lora: bool | None = None,
        teacher_engine: str | None = None,
        teacher_url: str | None = None,
        teacher_pool: str | None = None,
        distiller_config: DistillerConfig | Mapping[str, Any] | None = None,
        preset: Mapping[str, Any] | None = None,
        device: str = "auto",
        run_dir: str = "runs/ReAD-v0",
        resume: bool = True,
        utility_every: int = 0,
        progress: bool = True,
        keep_episodes: int | None = None,
        scratch: bool = False,
        **contract_args: Any,
    ) -> None:
        super().__init__(**{"budget_tokens": DEFAULT_BUDGET_TOKENS, "num_steps": DEFAULT_NUM_STEPS, **contract_args})
        for name, value in (("resume", resume), ("progress", progress), ("scratch", scratch)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        if isinstance(utility_every, bool) or not isinstance(utility_every, int) or utility_every < 0:
            raise ValueError(f"utility_every must be a non-negative integer, got {utility_every!r}")
        if keep_episodes is not None and (isinstance(keep_episodes, bool) or not isinstance(keep_episodes, int) or keep_episodes < 1):
            raise ValueError(f"keep_episodes must be a positive integer or None, got {keep_episodes!r}")
        if not isinstance(run_dir, (str, os.PathLike)):
            raise TypeError(f"run_dir must be a folder path (str or os.PathLike), got {type(run_dir).__name__} {run_dir!r}")
        if Path(run_dir).exists() and not Path(run_dir).is_dir():
            raise ValueError(f"run_dir {run_dir} exists and is not a folder")
        if device != "auto" and device != "cpu":
            from read_env.distill.models import torch_device

            torch_device(device)  # raises naming the device
        direct = {"teacher": teacher, "student": student, "objective": objective, "lora": lora, "teacher_engine": teacher_engine,
                  "teacher_url": teacher_url, "teacher_pool": teacher_pool, "prompt_streams": True if teacher_pool is not None else None}
        direct = {key: value for key, value in direct.items() if value is not None}
        if isinstance(distiller_config, DistillerConfig):
            self.distiller_config = replace(distiller_config, **direct)
        else:
            options = distiller_config or {}
            self.distiller_config = DistillerConfig.from_dict({**(preset or {}), **options, **direct} if isinstance(options, Mapping) else options)
        self._check_models()
        config = self.distiller_config
        if config.item_source == "full_splits" and not config.clip_items:
            from read_env.distill.decontamination import take

            for capability in self.capabilities:  # raises naming the capability and the counts
                take(capability, "probe", config.probe_items, config.use_banks)
                take(capability, "eval", config.eval_items, config.use_banks)
        self.config = {"capabilities": list(self.capabilities), "budget_tokens": self.budget_tokens, "num_steps": self.num_steps,
                       "distiller": self.distiller_config.run_identity()}  # resume refuses an episode of another config
        self.device = device
        self.utility_every = utility_every
        self.progress = progress
        self.scratch = scratch
        self.store = RunStore(run_dir, scratch, keep_episodes)
        self.resume = resume and not scratch
        self._may_resume = self.resume
        self._models = None
        self.distiller = None

    @property
    def run_dir(self) -> Path:
        return self.store.run_dir

    @property
    def episode_dir(self) -> Path | None:
        """The current episode's folder (``None`` before the first reset and after a scratch episode)."""
        return self.store.episode_dir

    def _check_models(self) -> None:
        """Raise at construction when the configured models or teacher engine cannot be used offline."""
        from read_env.distill.models import check_model_name

        check_model_name(self.distiller_config.teacher, "teacher", self.distiller_config.cache)
        check_model_name(self.distiller_config.student, "student", self.distiller_config.cache)
        if self.distiller_config.teacher_engine == "openai":
            from read_env.distill.engines.openai_server import check_teacher_server

            config = self.distiller_config
            check_teacher_server(config.teacher_url, config.teacher_model or config.teacher)  # the embedded teacher's name: at reset
        if self.distiller_config.teacher_pool is not None:
            from read_env.distill.pool import check_pool_folder

            check_pool_folder(self.distiller_config)
        if self.distiller_config.teacher_engine == "vllm":
            from read_env.distill.engines.vllm_engine import require_vllm

            require_vllm()

    # --------------------------------------------------------------------------------- episodes
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        may_resume, self._may_resume = self._may_resume, False
        unfinished = self.store.unfinished(self.config, same_run) if may_resume else None
        if unfinished is not None:
            return self._resume(*unfinished)
        observation, info = super().reset(seed=seed, options=options)
        info.update(self._start_info)
        try:
            record = {"config": self.config, "seed": self._distiller_seed, "requirement": self.requirement.tolist(), **self._record(info)}
            self.store.commit(record)
        except OSError:
            shutil.rmtree(self.episode_dir, ignore_errors=True)  # a failed reset leaves no episode folder
            self._truncated = True  # and no episode to step
            raise
        return observation, info

    def _begin(self, prepared: dict[str, Any]) -> tuple[np.ndarray, float]:
        from tqdm import tqdm

        self._set_task(self.task_name, self.requirement)  # the observation shows the task's weights
        episode_dir = self.store.new_folder()
        self._distiller_seed = int(self.np_random.integers(2**31))
        with tqdm(total=2, desc="ReAD-v0 reset", unit="stage", disable=not self.progress, leave=False) as bar:
            bar.set_postfix_str("loading models and teacher references")
            distiller = self._make_distiller(episode_dir, self._distiller_seed)
            bar.update()
            bar.set_postfix_str("measuring the student, writing checkpoint-0")
            try:
                outcome = distiller.begin(self.requirement)
            except BaseException:
                shutil.rmtree(episode_dir, ignore_errors=True)  # a failed reset leaves no episode folder
                raise
            bar.update()
        self.distiller, self.store.episode_dir = distiller, episode_dir
        self._start_info = self._evaluation_info(outcome.evaluation)
        if self.distiller_config.item_source == "full_splits":
            from read_env.distill.decontamination import decontamination_report

            self._start_info["decontamination"] = decontamination_report(self.config["capabilities"], self.distiller_config.use_banks)
            self._start_info["items"] = {"probe": [len(distiller.probes.items[c]) for c in distiller.capabilities],
                                         "eval": [len(distiller.evaluator.items[c]) for c in distiller.capabilities]}
        return outcome.probe.profile, outcome.utility

    def _evaluation_info(self, evaluation: Any) -> dict[str, Any]:
        """The standard errors of a measured utility (``evaluation``: an EvalResult; none without one or without its
        item scores, as ReAD-Mini's)."""
        if evaluation is None or not evaluation.item_scores:
            return {}
        return {"utility_stderr": evaluation.utility_stderr(self.requirement), "eval_stderr": evaluation.stderr}

    def _make_distiller(self, episode_dir: Path, seed: int):
        from read_env.distill.distiller import Distiller  # torch and transformers only when used
        from read_env.distill.models import shared_models

        if self._models is None:
            self._models = shared_models(self.distiller_config, self.device)
        return Distiller(self.config["capabilities"], self.distiller_config, episode_dir, seed=seed, reference_dir=self.run_dir, models=self._models,
                         budget_tokens=self.budget_tokens)

    def _distill(self, allocation: np.ndarray, tokens: int) -> tuple[np.ndarray, float, dict[str, Any]]:
        from read_env.distill.ledger import largest_remainder_split

        self._state_before_step = self.episode_state()  # what _commit restores when the step cannot be written
        split = largest_remainder_split(tokens, allocation)
        step = self._step + 1
        measure = not self.scratch and (step == self.num_steps or bool(self.utility_every and step % self.utility_every == 0))
        try:
            outcome = self.distiller.step(split, progress=self.tokens_used_total / self.budget_tokens, requirement=self.requirement if measure else None,
                                          final=self.spends_remainder and step == self.num_steps, checkpoint=not self.scratch)
        except Exception as error:  # noqa: BLE001 - the contract: end the episode, never crash the caller
            return self.profile, self.utility, self._abort(error, split.tolist())
        report, probe = outcome.report, outcome.probe
        return probe.profile, self.utility if outcome.utility is None else outcome.utility, {
            **self.step_extra(split, report, probe, outcome.totals, measure),
            **self._evaluation_info(outcome.evaluation),
            "seconds": {"generation": report.generation_seconds, "training": report.training_seconds, "distill": report.seconds, "probe": probe.seconds},
        }

    @classmethod
    def step_extra(cls, split: np.ndarray, report: Any, probe: Any, totals: dict[str, int], measured: bool) -> dict[str, Any]:
        """A distilled step's own ``info`` entries (timings aside): its allotment ``split`` [C], the distiller's
        ``report`` (StepReport) and ``probe`` (ProbeResult), the ledger ``totals`` after it, and whether the
        utility was ``measured``."""
        return {
            "tokens_allotted": split.tolist(),
            "tokens_spent": report.tokens_spent,
            "tokens_generated": report.tokens_generated,
            "tokens_trained": report.tokens_trained,
            **cls._ledger_info(totals),
            "loss": report.loss,
            "micro_batch": report.micro_batch,
            "probe_stderr": probe.stderr,
            "utility_measured": measured,
        }

    def _abort(self, error: Exception, tokens_allotted: list[int]) -> dict[str, Any]:
        """Roll the distiller back to the last committed step after ``error``: the truncated step's extra info."""
        message = f"{type(error).__name__}: {error}"
        try:
            self.distiller.rollback(self._step)
            self.store.prune_checkpoints(keep=self._step)
        except Exception as rollback_error:  # noqa: BLE001
            message += f"; rollback to checkpoint-{self._step} failed too ({type(rollback_error).__name__}: {rollback_error})"
        if self.resume:
            message += f"; reset() resumes this episode from step {self._step}"
        else:
            message += f"; reset() starts a new episode (resume=False), this one stays in {self.episode_dir}"
        return {"truncated": True, "error": message, "tokens_allotted": tokens_allotted, **self._ledger_info(self.distiller.totals())}

    @staticmethod
    def _ledger_info(totals: dict[str, int]) -> dict[str, int]:
        return {"tokens_spent_total": totals["spent"], "tokens_carried": totals["carry"]}

    def _commit(self, result: StepResult) -> StepResult:
        """Write the step's history line (the commit point: a step whose line cannot be written did not happen and
        is rolled back, truncated), then end a finished or truncated episode's files."""
        observation, reward, terminated, truncated, info = result
        try:
            self.store.commit({"reward": reward, "terminated": terminated, "truncated": truncated, **self._record(info)})
        except OSError as error:
            if truncated:
                info["error"] += f"; the truncated step's history line was not written either ({error})"
            else:
                self.restore_episode_state(self._state_before_step)
                observation, reward, terminated, truncated, info = self._truncated_step(info["allocation"], self._abort(error, info["tokens_allotted"]))
                self._write_truncated(reward, info)
        if truncated:
            self._may_resume = self.resume
        if self.scratch and (terminated or truncated):
            self.store.remove_scratch()
        elif terminated:
            try:
                self.distiller.finish()
            except OSError as error:  # the episode is complete and its last checkpoint kept: report, do not raise
                info["error"] = f"the finished episode's files were not written: {type(error).__name__}: {error}"
            self.store.drop_old_episodes()
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        self.store.remove_scratch()
        super().close()

    # ------------------------------------------------------------------------------- persistence
    def _record(self, info: dict[str, Any]) -> dict[str, Any]:
        """The history line of the step just taken: info, state, and the random state to resume from."""
        state = {
            "profile": self.profile.tolist(),
            "allocation": self.allocation.tolist(),
            "delta": self.delta.tolist(),
            "np_random": self.np_random.bit_generator.state,
            "ledger": self.distiller.totals(),
        }
        return {**{key: to_jsonable(value) for key, value in info.items()}, **state}

    def _write_truncated(self, reward: float, info: dict[str, Any]) -> None:
        """Record a truncated step in the history when the disk allows (resume skips it either way)."""
        try:
            self.store.commit({"reward": reward, "terminated": False, "truncated": True, **self._record(info)})
        except OSError as error:
            info["error"] += f"; the truncated step's history line was not written either ({error})"

    def _resume(self, episode_dir: Path, records: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        first, last = records[0], records[-1]
        self.distiller = self._make_distiller(episode_dir, first["seed"])
        self.distiller.rollback(last["step"])
        self.store.reopen(episode_dir, records)
        self._distiller_seed = first["seed"]
        self._set_task(first["task"], np.array(first["requirement"]))
        self.restore_episode_state(last)
        self._truncated = False
        self._np_random = np.random.Generator(np.random.PCG64())
        self._np_random.bit_generator.state = last["np_random"]
        info = {"task": self.task_name, "utility": self.utility, "tokens_used_total": self.tokens_used_total, "step": self._step, "resumed": True}
        return self._observation(), info

    HISTORY_ONLY = ("reward", "terminated", "truncated", "profile", "delta", "np_random", "ledger", "config", "seed", "requirement")
    """Keys of a history line that are not the step's ``info``."""

    def replay(self) -> tuple[dict[str, np.ndarray], dict[str, Any], list[tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]]]:
        """The current episode's committed steps as they were first returned: ``reset()``'s observation and info,
        then ``step()``'s result for each step (info as stored in the history: arrays as lists, timings as
        measured then). After a ``reset()`` that resumed (``info["resumed"]``), a caller replays these to bring
        its own state (an agent's) to where the episode continues."""
        first, *steps = read_history(self.episode_dir)[: self._step + 1]
        reset_info = {key: first[key] for key in ("task", "utility", "tokens_used_total", "step")}
        results = [(self._observation_of(record["profile"], record["allocation"], record["delta"], record["tokens_used_total"]),
                    record["reward"], record["terminated"], record["truncated"],
                    {key: value for key, value in record.items() if key not in self.HISTORY_ONLY}) for record in steps]
        return self._observation_of(first["profile"], first["allocation"], first["delta"], 0), reset_info, results


def same_run(saved: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether an episode saved with the environment config ``saved`` computes what ``config`` computes; a
    :class:`DistillerConfig` field added since ``saved`` was written counts at its default (so older run folders
    still resume)."""
    defaults = DistillerConfig().run_identity()

    def complete(values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "distiller": {**defaults, **values.get("distiller", {})}}

    return complete(saved) == complete(config)
