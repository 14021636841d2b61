"""The ReAD-Mini distillation backend: the teacher's answers train the student under the exact token rule.

:class:`MiniDistiller` is a :class:`read_env.distill.distiller.Distiller` with another teacher, student and
measurement: it keeps the Distiller's step (:meth:`~read_env.distill.distiller.Distiller.distill`: budget rule,
training, ledger), episode API (``begin``, ``step``, ``rollback``, ``totals``, ``prune_checkpoints``,
``finish``) and crash-safe checkpoints, so ``ReAD-Mini-v0`` reuses the run folders and resume-after-kill of
``ReAD-v0``.

The teacher's answers of a capability (:meth:`MiniDistiller._answers`): training items of the capability are
drawn at the environment's difficulty and answered by the teacher while their answers fit the generation cap
and their prompt + answer tokens fit the capability's allotment; an answer costs its characters plus EOS as
generated tokens, and the student trains on prompt + separator + answer + EOS tokens (prompt and separator
masked, never padding). The Distiller truncates the last example so that training uses exactly what is left
(unless less than its prompt plus one answer token is left, which is carried).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from read_env.distill.config import DistillerConfig
from read_env.distill.distiller import Distiller
from read_env.distill.evaluation import EvalResult
from read_env.distill.ledger import TokenLedger
from read_env.distill.probes import ProbeResult
from read_env.distill.training import TrainExample, Trainer
from read_env.mini.families import check_difficulty, families
from read_env.mini.student import PAD, StudentConfig, example, exact_match, load_student
from read_env.mini.teacher import Teacher


class ItemSampler:
    """Draws training items of family ``index`` and the teacher's answers from one seeded generator."""

    def __init__(self, teacher: Teacher, difficulty: int, seed: int) -> None:
        self.teacher, self.difficulty = teacher, difficulty
        self.rng = np.random.default_rng([seed, 1])

    def sample(self, index: int) -> TrainExample:
        prompt, _ = self.teacher.families[index].training_item(self.rng, self.difficulty)
        return example(prompt, self.teacher.answer(index, prompt, self.rng), index)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def held_out(capabilities: Sequence[str], split: str, count: int, difficulty: int) -> list[list[TrainExample]]:
    """Per capability, ``count`` fixed held-out examples (exact answers) of ``split`` at ``difficulty``."""
    return [[example(prompt, answer, index) for prompt, answer in family.heldout_items(split, count, difficulty)] for index, family in enumerate(families(capabilities))]


def accuracy(model: torch.nn.Module, items: list[list[TrainExample]]) -> tuple[np.ndarray, np.ndarray]:
    """Exact-match accuracy [K] in [0, 1] per capability and its binomial standard error [K]."""
    flat = [item for group in items for item in group]
    correct = exact_match(model, flat)
    bounds = np.cumsum([0] + [len(group) for group in items])
    scores = np.array([correct[start:end].mean() for start, end in zip(bounds[:-1], bounds[1:])])
    counts = np.diff(bounds)
    return scores, np.sqrt(scores * (1.0 - scores) / counts)


class MiniDistiller(Distiller):
    """Budgeted distillation of the mini student from the exact-solver teacher (see the module docstring).

    Args:
        capabilities: capability names (a subset and order of the paper's eight).
        config: the settings used here: ``lr``, ``batch_size``, ``micro_batch``, ``generation_share``,
            ``probe_items`` / ``eval_items`` (held-out items per capability for the profile and for task
            utility) and ``keep_after_episode`` (``"checkpoint"`` or ``"nothing"``: the student has no tokenizer
            to save in ``final/``).
        run_dir: the episode's folder (ledger, checkpoints).
        seed: seeds item sampling and batch order.
        student: a :class:`~read_env.mini.student.StudentConfig`; ``cache_dir`` where its checkpoint is cached.
        error_rates: the teacher's error rate per capability [K].
        difficulty: 1-3, of training and held-out items.
    """

    def __init__(
        self,
        capabilities: Sequence[str],
        config: DistillerConfig,
        run_dir: str | Path,
        *,
        seed: int = 0,
        student: StudentConfig,
        error_rates: np.ndarray,
        difficulty: int = 1,
        cache_dir: str | Path | None = None,
    ) -> None:
        if config.keep_after_episode == "weights":
            raise ValueError("the mini student has no tokenizer to save: keep_after_episode must be 'checkpoint' or 'nothing'")
        # Distiller.__init__ loads Hugging Face models; this sets the attributes its checkpoint methods use instead.
        self.capabilities = list(capabilities)
        self.K = len(self.capabilities)
        self.config, self.run_dir, self.seed = config, Path(run_dir), seed
        self.generation_share, self.lora = config.generation_share, False
        difficulty = check_difficulty(difficulty)
        torch.manual_seed(seed)
        self.np_rng = np.random.default_rng(seed)
        self.teacher = Teacher(families(self.capabilities), error_rates)
        self.student = load_student(student, cache_dir)
        self.trainer = Trainer(self.student, pad_id=PAD, lr=config.lr, batch_size=config.batch_size, micro_batch=config.micro_batch)
        self.sampler = ItemSampler(self.teacher, difficulty, seed)
        self.probe_set = held_out(self.capabilities, "probe", config.probe_items, difficulty)
        self.eval_set = held_out(self.capabilities, "eval", config.eval_items, difficulty)
        self.ledger = TokenLedger(self.run_dir / "ledger.jsonl")

    def start_measurement(self) -> tuple[ProbeResult, EvalResult]:
        """The untrained student's probe and evaluation results (measured every episode: it takes milliseconds)."""
        return self.probe(), self.evaluate()

    def probe(self) -> ProbeResult:
        """The student's profile [K]: exact-match accuracy on the held-out probe items, with standard errors."""
        start = time.perf_counter()
        scores, stderr = accuracy(self.student, self.probe_set)
        return ProbeResult(scores, stderr, time.perf_counter() - start)

    def evaluate(self) -> EvalResult:
        """Exact-match accuracy [K] on the held-out evaluation items (disjoint from the probe items)."""
        start = time.perf_counter()
        scores, _ = accuracy(self.student, self.eval_set)
        return EvalResult(scores, np.array([len(group) for group in self.eval_set]), time.perf_counter() - start)

    def _answers(self, k: int, generation_cap: int, allowance: int, progress: float, min_new_tokens: int) -> tuple[int, list[TrainExample], float]:
        """Teacher-answered items of capability ``k`` while answers fit ``generation_cap`` and prompt + answer
        tokens fit ``allowance``: (tokens generated, examples, 0.0 seconds). The families have no curriculum and
        answers come whole: ``progress`` and ``min_new_tokens`` are unused."""
        generated, drawn_tokens, drawn = 0, 0, []
        while True:
            item = self.sampler.sample(k)
            answer = len(item) - item.n_prompt
            if generated + answer > generation_cap or drawn_tokens + item.n_prompt + 1 > allowance - generated - answer:
                return generated, drawn, 0.0
            generated += answer
            drawn.append(item)
            drawn_tokens += len(item)
