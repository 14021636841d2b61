"""``ReAD-v0``: real budgeted distillation of a student LM from a teacher LM, one allocation per step.

A step (see :class:`read_env.distill.distiller.Distiller` for the details and the exact token rule):

1. the step's tokens are split over capabilities by the allocation (largest remainder, exact integers);
2. the teacher answers capability-targeted prompts within each capability's generation tokens;
3. the student trains on the answers (prompt tokens masked) within the training tokens;
4. probes measure the student's profile [K] in [0, 1] (standard errors in ``info["probe_stderr"]``);
5. task utility (``r . held-out scores``) is measured after reset, every ``utility_every`` steps and at the
   end; between measurements ``info["utility"]`` repeats the last one (``info["utility_measured"]``).

Token accounting: ``info["tokens_used_total"]`` is the budget handed to the backend so far (the contract's
count, equal to the ledger's allotted total), ``info["tokens_spent_total"]`` what the teacher generated and
the student trained on (the ledger's spent total, never more), ``info["tokens_carried"]`` the rest, carried
into the next step; the last step spends what its capabilities leave on more answers of the most-allotted
ones (``DistillationEnv.spends_remainder``; ``ReAD-Mini-v0`` turns it off to keep its published episodes),
and what it still leaves (less than the shortest next prompt plus two tokens) is the budget left unspent.

Runs survive: each episode writes ``run_dir/episode-NNNN/`` (created once its reset succeeded) with
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
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from itertools import takewhile
from pathlib import Path
from typing import Any

import numpy as np

from read_env.allocation_env import AllocationEnv
from read_env.distill.config import DistillerConfig
from read_env.distill.safe_files import append_line, keep_lines, read_lines
from read_env.records import to_jsonable

HISTORY = "history.jsonl"
DEFAULT_BUDGET_TOKENS = 12_000
DEFAULT_NUM_STEPS = 6


class DistillationEnv(AllocationEnv):
    """The contract of :class:`~read_env.allocation_env.AllocationEnv` on real teacher -> student distillation.

    Args (beyond the contract's):
        teacher, student, objective, lora, teacher_engine, teacher_url, teacher_pool: the :class:`DistillerConfig`
            fields of the same names, when given (they override ``distiller_config``); ``teacher_pool`` (a pool
            folder or ``"auto"``) also sets ``prompt_streams=True``.
        distiller_config: a :class:`~read_env.distill.config.DistillerConfig` or its JSON dict (unknown keys
            raise at construction).
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
            self.distiller_config = DistillerConfig.from_dict({**options, **direct} if isinstance(options, Mapping) else options)
        self._check_models()
        self.config = {"capabilities": list(self.capabilities), "budget_tokens": self.budget_tokens, "num_steps": self.num_steps,
                       "distiller": self.distiller_config.run_identity()}  # resume refuses an episode of another config
        self.device = device
        self.run_dir = Path(run_dir)
        self.utility_every = utility_every
        self.progress = progress
        self.keep_episodes = keep_episodes
        self.scratch = scratch
        self.resume = resume and not scratch
        self._may_resume = self.resume
        self._models = None
        self.distiller = None
        self.episode_dir: Path | None = None

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
        unfinished = self._unfinished_episode() if may_resume else None
        if unfinished is not None:
            return self._resume(*unfinished)
        observation, info = super().reset(seed=seed, options=options)
        try:
            self._commit({"config": self.config, "seed": self._distiller_seed, "requirement": self.requirement.tolist(), **self._record(info)})
        except OSError:
            shutil.rmtree(self.episode_dir, ignore_errors=True)  # a failed reset leaves no episode folder
            self._truncated = True  # and no episode to step
            raise
        return observation, info

    def _begin(self, prepared: dict[str, Any]) -> tuple[np.ndarray, float]:
        from tqdm import tqdm

        if self.scratch:
            self._remove_scratch()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            episode_dir = Path(tempfile.mkdtemp(prefix="scratch-", dir=self.run_dir))
        else:
            numbers = [int(path.name[8:]) for path in self._episodes()]
            episode_dir = self.run_dir / f"episode-{max(numbers, default=-1) + 1:04d}"
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
        self.distiller, self.episode_dir = distiller, episode_dir
        return outcome.probe.profile, outcome.utility

    def _make_distiller(self, episode_dir: Path, seed: int):
        from read_env.distill.distiller import Distiller  # torch and transformers only when used
        from read_env.distill.models import shared_models

        if self._models is None:
            self._models = shared_models(self.distiller_config, self.device, seed)
        return Distiller(self.config["capabilities"], self.distiller_config, episode_dir, seed=seed, reference_dir=self.run_dir, models=self._models)

    def _distill(self, allocation: np.ndarray, tokens: int) -> tuple[np.ndarray, float, dict[str, Any]]:
        from read_env.distill.ledger import largest_remainder_split

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
            self.distiller.prune_checkpoints(keep=self._step)
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

    def step(self, action: np.ndarray):
        self._check_running()
        before = (self.profile, self.allocation, self.delta, self.utility, self._step, self.tokens_used_total)
        observation, reward, terminated, truncated, info = super().step(action)
        try:
            self._commit({"reward": reward, "terminated": terminated, "truncated": truncated, **self._record(info)})
        except OSError as error:  # the history line is the commit point: without it the step did not happen
            if truncated:
                info["error"] += f"; the truncated step's history line was not written either ({error})"
            else:
                self.profile, self.allocation, self.delta, self.utility, self._step, self.tokens_used_total = before
                observation, reward, terminated, truncated, info = self._truncated_step(info["allocation"], self._abort(error, info["tokens_allotted"]))
                self._write_truncated(reward, info)
        if truncated:
            self._may_resume = self.resume
        if self.scratch and (terminated or truncated):
            self._remove_scratch()
        elif terminated:
            try:
                self.distiller.finish()
            except OSError as error:  # the episode is complete and its last checkpoint kept: report, do not raise
                info["error"] = f"the finished episode's files were not written: {type(error).__name__}: {error}"
            if self.keep_episodes is not None:
                self._drop_old_episodes()
        return observation, reward, terminated, truncated, info

    def _drop_old_episodes(self) -> None:
        """Delete the finished episode folders of ``run_dir`` but the newest ``keep_episodes``."""
        finished = [path for path in self._episodes() if (records := read_history(path)) and records[-1].get("terminated")]
        for old in finished[: -self.keep_episodes]:
            shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        self._remove_scratch()
        super().close()

    def _remove_scratch(self) -> None:
        """Delete the folder of the current scratch episode, if any."""
        if self.scratch and self.episode_dir is not None:
            shutil.rmtree(self.episode_dir, ignore_errors=True)
            self.episode_dir = None

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

    def _commit(self, record: dict[str, Any]) -> None:
        """Append the step's history line (the commit point), then drop every checkpoint but this step's
        (a scratch episode keeps its only one, ``checkpoint-0``)."""
        append_line(self.episode_dir / HISTORY, record)
        self.distiller.prune_checkpoints(keep=0 if self.scratch else record["step"])

    def _write_truncated(self, reward: float, info: dict[str, Any]) -> None:
        """Record a truncated step in the history when the disk allows (resume skips it either way)."""
        try:
            self._commit({"reward": reward, "terminated": False, "truncated": True, **self._record(info)})
        except OSError as error:
            info["error"] += f"; the truncated step's history line was not written either ({error})"

    def _episodes(self) -> list[Path]:
        """The episode folders of ``run_dir``, oldest first."""
        return sorted(path for path in self.run_dir.glob("episode-*") if path.name[8:].isdigit()) if self.run_dir.is_dir() else []

    def _unfinished_episode(self) -> tuple[Path, list[dict[str, Any]]] | None:
        episodes = self._episodes()
        if not episodes:
            return None
        records = list(takewhile(lambda record: not record.get("truncated"), read_history(episodes[-1])))
        if not records or records[-1].get("terminated"):
            return None
        if records[0]["config"] != self.config:
            raise ValueError(f"{episodes[-1]} was run with another configuration; pass resume=False or another run_dir")
        return episodes[-1], records

    def _resume(self, episode_dir: Path, records: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        first, last = records[0], records[-1]
        self.distiller = self._make_distiller(episode_dir, first["seed"])
        self.distiller.rollback(last["step"])
        keep_lines(episode_dir / HISTORY, len(records))  # drop a torn or truncated step's line (needs no free space)
        self.episode_dir, self._distiller_seed = episode_dir, first["seed"]
        self.distiller.prune_checkpoints(keep=last["step"])
        self._set_task(first["task"], np.array(first["requirement"]))
        self.profile, self.allocation, self.delta = (np.array(last[key]) for key in ("profile", "allocation", "delta"))
        self.utility, self._step, self.tokens_used_total = last["utility"], last["step"], last["tokens_used_total"]
        self._truncated = False
        self._np_random = np.random.Generator(np.random.PCG64())
        self._np_random.bit_generator.state = last["np_random"]
        info = {"task": self.task_name, "utility": self.utility, "tokens_used_total": self.tokens_used_total, "step": self._step, "resumed": True}
        return self._observation(), info


def read_history(episode_dir: str | Path) -> list[dict[str, Any]]:
    """The recorded steps of an episode folder's ``history.jsonl`` (a torn last line is ignored)."""
    return read_lines(Path(episode_dir) / HISTORY)
