"""The ReAD-Mini distillation backend: the teacher's answers train the student under the exact token rule.

:class:`MiniDistiller` has the interface of :class:`read_env.distill.distiller.Distiller` (``probe``,
``distill``, ``utility``, ``ledger``) and reuses its checkpoints (``save_checkpoint`` / ``load_checkpoint``:
weights, optimizer, random states, item sampler, ledger), so ``ReAD-Mini-v0`` reuses the run folders and
resume-after-kill of ``ReAD-v0``.

A step (:meth:`MiniDistiller.distill`) follows the budget rule of :mod:`read_env.distill.ledger`: the carried
remainder is added to the allotment in proportion; each capability's allotment ``T_c`` caps teacher
generation at ``generation_share * T_c``; training items of the capability are drawn at the environment's
difficulty and answered by the teacher while their answers fit the generation cap and their prompt + answer
tokens fit what is left of ``T_c``; an answer costs its characters plus EOS as generated tokens, and the
student trains on prompt + separator + answer + EOS tokens (prompt and separator masked, never padding); the
last example is truncated so that training uses exactly what is left (unless less than its prompt plus one
answer token is left, which is carried). One pass over the step's examples of all capabilities (mixed,
length-bucketed) with the persistent AdamW optimizer of :class:`~read_env.distill.training.Trainer`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from read_env.distill.distiller import Distiller, StepReport
from read_env.distill.evaluation import EvalResult
from read_env.distill.ledger import LedgerEntry, TokenLedger, largest_remainder_split, split_generation_training
from read_env.distill.probes import ProbeResult
from read_env.distill.training import TrainExample, Trainer, fit_budget
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
        run_dir: folder of the ledger (``ledger.jsonl``).
        student: a :class:`~read_env.mini.student.StudentConfig`; ``cache_dir`` where its checkpoint is cached.
        error_rates: the teacher's error rate per capability [K].
        difficulty: 1-3, of training and held-out items.
        seed: seeds item sampling and batch order.
        lr, batch_size: AdamW learning rate and sequences per optimizer step.
        probe_items, eval_items: held-out items per capability for the profile and for task utility.
        generation_share: share of each allotment that caps teacher generation.
    """

    def __init__(
        self,
        capabilities: Sequence[str],
        run_dir: str | Path,
        *,
        student: StudentConfig,
        error_rates: np.ndarray,
        difficulty: int = 1,
        seed: int = 0,
        lr: float = 5e-4,
        batch_size: int = 32,
        probe_items: int = 64,
        eval_items: int = 64,
        generation_share: float = 0.4,
        cache_dir: str | Path | None = None,
    ) -> None:
        # Distiller.__init__ loads Hugging Face models; this sets the attributes its checkpoint methods use instead.
        self.capabilities = list(capabilities)
        self.K = len(self.capabilities)
        self.run_dir = Path(run_dir)
        self.generation_share, self.lora, self.seed = generation_share, False, seed
        difficulty = check_difficulty(difficulty)
        torch.manual_seed(seed)
        self.np_rng = np.random.default_rng(seed)
        self.teacher = Teacher(families(self.capabilities), error_rates)
        self.student = load_student(student, cache_dir)
        self.trainer = Trainer(self.student, pad_id=PAD, lr=lr, batch_size=batch_size, micro_batch=batch_size)
        self.sampler = ItemSampler(self.teacher, difficulty, seed)
        self.probe_set = held_out(self.capabilities, "probe", probe_items, difficulty)
        self.eval_set = held_out(self.capabilities, "eval", eval_items, difficulty)
        self.ledger = TokenLedger(self.run_dir / "ledger.jsonl")

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

    def distill(self, tokens: Sequence[int] | np.ndarray, progress: float) -> StepReport:
        """Spend at most ``sum(tokens)`` (+ the carried remainder) tokens; ``tokens`` [K] integers >= 0.

        ``progress`` (fraction of the budget spent) is recorded in the ledger; the mini families have no
        curriculum.
        """
        start = time.perf_counter()
        allotted = np.asarray(tokens)
        if allotted.shape != (self.K,) or (allotted < 0).any() or not np.equal(np.mod(allotted, 1), 0).all():
            raise ValueError(f"tokens must be {self.K} non-negative integers, got {tokens!r}")
        allotted = allotted.astype(np.int64)
        carry_in = self.ledger.carry
        allowance = allotted + (largest_remainder_split(carry_in, allotted) if allotted.sum() > 0 else 0)
        generated = np.zeros(self.K, dtype=np.int64)
        trained = np.zeros(self.K, dtype=np.int64)
        examples: list[TrainExample] = []
        for index in range(self.K):
            cap, _ = split_generation_training(int(allowance[index]), self.generation_share)
            drawn: list[TrainExample] = []
            drawn_tokens = 0
            while True:
                item = self.sampler.sample(index)
                answer = len(item) - item.n_prompt
                if generated[index] + answer > cap or drawn_tokens + item.n_prompt + 1 > allowance[index] - generated[index] - answer:
                    break
                generated[index] += answer
                drawn.append(item)
                drawn_tokens += len(item)
            kept, trained[index] = fit_budget(drawn, int(allowance[index] - generated[index]))
            examples += kept
        stats = self.trainer.train(examples, self.np_rng)
        spent = int(generated.sum() + trained.sum())
        carry_out = int(allotted.sum()) + carry_in - spent
        step = len(self.ledger)
        self.ledger.append(
            LedgerEntry(step, allotted.tolist(), carry_in, generated.tolist(), trained.tolist(), carry_out, {"loss": stats.loss, "examples": len(examples), "progress": progress})
        )
        return StepReport(
            step=step,
            tokens_allotted=int(allotted.sum()),
            carry_in=carry_in,
            carry_out=carry_out,
            tokens_generated=int(generated.sum()),
            tokens_trained=int(trained.sum()),
            generated=generated,
            trained=trained,
            examples=len(examples),
            loss=stats.loss,
            seconds=time.perf_counter() - start,
            generation_seconds=0.0,
            training_seconds=stats.seconds,
            micro_batch=stats.micro_batch,
        )
