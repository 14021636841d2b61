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
(unless less than its prompt plus one answer token is left, which is carried). Items are drawn at the
environment's difficulty, or at a uniform level of the skill set when it names none (``ReAD-Mini-v1``).

Training like distillation (options, all off in ``ReAD-Mini-v0``): ``lr_schedule="warmup_cosine"`` sets the
learning rate of each optimizer step from the share of the episode's budget spent before it
(:func:`~read_env.distill.training.warmup_cosine`: warm-up over the first ``warmup_share``, cosine decay to
10% of ``lr``); ``lora`` trains LoRA adapters (peft) of rank ``lora_r`` instead of all weights; a
``replay_share`` of the tokens the student trains on in a step are pre-training examples
(:func:`~read_env.mini.student.corpus_example`) added beside the teacher's answers: ``replay_share /
(1 - replay_share)`` times the step's trained tokens, outside the budget (they cost no teacher tokens and
are not in the ledger).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from read_env.capabilities import PAPER_CAPABILITIES
from read_env.distill.config import DistillerConfig
from read_env.distill.distiller import Distiller
from read_env.distill.evaluation import EvalResult
from read_env.distill.ledger import TokenLedger
from read_env.distill.probes import ProbeResult
from read_env.distill.training import TrainExample, Trainer, apply_lora, budget_schedule
from read_env.mini.families import Family, check_difficulty
from read_env.mini.student import PAD, SKILL_SETS, StudentConfig, answer_scores, corpus_example, example, load_student
from read_env.mini.teacher import Teacher


class ItemSampler:
    """Draws training items of family ``index`` (at a uniform one of ``levels``) and the teacher's answers,
    and replay examples of the student's pre-training corpus, from seeded generators.

    ``streams=False`` (v0, v1): one generator draws the items of every capability, so two allocations under one
    seed draw different items. ``streams=True`` (v2): each capability draws from its own generator, seeded by the
    seed and the capability (its index among the paper's eight), so under one seed every allocation trains on the same sequence of items of
    each capability (common random numbers: paired comparisons differ only by what the allocations differ in).
    """

    def __init__(self, teacher: Teacher, levels: Sequence[int], seed: int, student: StudentConfig, streams: bool = False) -> None:
        self.teacher, self.levels, self.student = teacher, tuple(levels), student
        self.rng = np.random.default_rng([seed, 1])
        self.replay_rng = np.random.default_rng([seed, 2])
        self.streams = [np.random.default_rng([seed, 3, PAPER_CAPABILITIES.index(family.capability)]) for family in teacher.families] if streams else []

    def sample(self, index: int) -> TrainExample:
        rng = self.streams[index] if self.streams else self.rng
        level = self.levels[0] if len(self.levels) == 1 else int(rng.choice(self.levels))
        prompt, _ = self.teacher.families[index].training_item(rng, level)
        return example(prompt, self.teacher.answer(index, prompt, rng), index)

    def replay(self, tokens: int) -> list[TrainExample]:
        """Pre-training examples of at least ``tokens`` tokens in all (none when ``tokens`` <= 0), capability -1."""
        drawn, size = [], 0
        while size < tokens:
            item = corpus_example(self.replay_rng, self.student)
            drawn.append(TrainExample(item.input_ids, item.n_prompt, -1))
            size += len(item)
        return drawn

    def state_dict(self) -> dict[str, Any]:
        state = {"rng": self.rng.bit_generator.state, "replay_rng": self.replay_rng.bit_generator.state}
        return state | ({"streams": [rng.bit_generator.state for rng in self.streams]} if self.streams else {})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.replay_rng.bit_generator.state = state["replay_rng"]
        for rng, saved in zip(self.streams, state.get("streams", []), strict=True):
            rng.bit_generator.state = saved


def held_out(family_list: Sequence[Family], split: str, count: int, levels: Sequence[int]) -> list[list[TrainExample]]:
    """Per family, ``count`` fixed held-out examples (exact answers) of ``split``, as equal shares of ``levels``
    as ``count`` allows (the first levels take the remainder); a level with fewer distinct items than its share
    (v2's evaluation split of level-1 facts) gives all it has and the next levels take the rest. Raises
    ``ValueError`` when the family has fewer than ``count`` in all. Built once per arguments in a process (every
    episode measures on the same items), returned as new lists."""
    return [list(group) for group in _held_out(tuple(family_list), split, count, tuple(levels))]


@functools.lru_cache(maxsize=32)
def _held_out(family_list: tuple[Family, ...], split: str, count: int, levels: tuple[int, ...]) -> tuple[tuple[TrainExample, ...], ...]:
    shares = [count // len(levels) + (i < count % len(levels)) for i in range(len(levels))]
    sets = []
    for index, family in enumerate(family_list):
        items, owed = [], 0
        for level, share in zip(levels, shares):
            if share + owed:
                found = family.heldout_items(split, share + owed, level, at_most=True)
                items += [example(prompt, answer, index) for prompt, answer in found]
                owed = share + owed - len(found)
        if owed:
            raise ValueError(f"{family.capability} has fewer than {count} distinct {split} items over levels {list(levels)}")
        sets.append(tuple(items))
    return tuple(sets)


def item_scores(model: torch.nn.Module, items: list[list[TrainExample]], metric: str = "exact") -> list[np.ndarray]:
    """Per capability, each item's score [n_k] in [0, 1] under ``metric`` ([M, n_k] for a stack of M students)."""
    flat = [item for group in items for item in group]
    scores = answer_scores(model, flat, metric)
    bounds = np.cumsum([0] + [len(group) for group in items])
    return [scores[..., start:end] for start, end in zip(bounds[:-1], bounds[1:])]


def accuracy(model: torch.nn.Module, items: list[list[TrainExample]], metric: str = "exact") -> tuple[np.ndarray, np.ndarray]:
    """Mean score [K] in [0, 1] per capability under ``metric`` and its standard error [K] (binomial for
    ``"exact"``, the items' sample standard deviation / sqrt(count) for ``"token"``); [M, K] each for a stack of
    M students (:func:`~read_env.mini.student.answer_scores`)."""
    groups = item_scores(model, items, metric)
    means = np.stack([group.mean(axis=-1) for group in groups], axis=-1)
    counts = np.array([group.shape[-1] for group in groups])
    if metric == "exact":
        return means, np.sqrt(means * (1.0 - means) / counts)
    spread = [group.std(ddof=1, axis=-1) if group.shape[-1] > 1 else np.zeros(group.shape[:-1]) for group in groups]
    return means, np.stack(spread, axis=-1) / np.sqrt(counts)


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
        difficulty: a level of the skill set (``student.skills``: 1-3 for v0, 1-5 for v1) of training and
            held-out items, or ``None`` for all its levels (uniform).
        metric: ``"exact"`` or ``"token"`` (:func:`~read_env.mini.student.answer_scores`).
        budget_tokens: the episode's budget (the learning-rate schedule runs over it).
        lr_schedule: ``"constant"`` or ``"warmup_cosine"`` over the budget, warm-up ``warmup_share``.
        replay_share: share in [0, 1) of trained tokens that are replayed pre-training examples.
        item_streams: each capability's training items from its own generator (:class:`ItemSampler`).
        final_items: 0 (v0, v1): task utility on ``eval_items`` items of the ``"eval"`` split every step. More
            (v2, whose families have a ``"validation"`` split): task utility on ``eval_items`` items of the
            validation split every step, and :meth:`final_evaluation` on ``final_items`` items of the ``"eval"``
            split, for the episode's final numbers only.
        scored: the capabilities [K] (bools) that :meth:`evaluate` and :meth:`final_evaluation` score (the task's
            required ones: utility reads no other); the others are NaN. ``None``: all.
        (LoRA: ``config.lora`` and ``config.lora_r``.)
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
        difficulty: int | None = 1,
        metric: str = "exact",
        budget_tokens: int = 1,
        lr_schedule: str = "constant",
        warmup_share: float = 0.1,
        replay_share: float = 0.0,
        item_streams: bool = False,
        final_items: int = 0,
        scored: Sequence[bool] | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if config.keep_after_episode == "weights":
            raise ValueError("the mini student has no tokenizer to save: keep_after_episode must be 'checkpoint' or 'nothing'")
        # Distiller.__init__ loads Hugging Face models; this sets the attributes its checkpoint methods use instead.
        self.capabilities = list(capabilities)
        self.K = len(self.capabilities)
        self.config, self.run_dir, self.seed = config, Path(run_dir), seed
        self.generation_share, self.lora = config.generation_share, config.lora
        skill_set, all_levels = SKILL_SETS[student.skills]
        levels = all_levels if difficulty is None else (check_difficulty(difficulty, all_levels),)
        self.metric, self.budget_tokens = metric, budget_tokens
        self.lr_schedule, self.warmup_share, self.replay_share = lr_schedule, warmup_share, replay_share
        torch.manual_seed(seed)
        self.np_rng = np.random.default_rng(seed)
        family_list = [skill_set[name] for name in self.capabilities]
        self.teacher = Teacher(family_list, error_rates)
        self.student = load_student(student, cache_dir)
        if config.lora:
            self.student = apply_lora(self.student, r=config.lora_r, alpha=2 * config.lora_r).eval()
        self.trainer = Trainer(self.student, pad_id=PAD, lr=config.lr, batch_size=config.batch_size, micro_batch=config.micro_batch)
        self.sampler = ItemSampler(self.teacher, levels, seed, student, streams=item_streams)
        self.scored = list(range(self.K)) if scored is None else [k for k in range(self.K) if scored[k]]
        scored_families = [family_list[k] for k in self.scored]
        self.probe_set = held_out(family_list, "probe", config.probe_items, levels)
        self.eval_set = held_out(scored_families, "validation" if final_items else "eval", config.eval_items, levels)
        self.final_set = held_out(scored_families, "eval", final_items, levels) if final_items else []
        self.ledger = TokenLedger(self.run_dir / "ledger.jsonl")

    def start_measurement(self) -> tuple[ProbeResult, EvalResult]:
        """The untrained student's probe and evaluation results (measured every episode: it takes milliseconds)."""
        return self.probe(), self.evaluate()

    def probe(self) -> ProbeResult:
        """The student's profile [K]: mean score on the held-out probe items, with standard errors."""
        start = time.perf_counter()
        scores, stderr = accuracy(self.student, self.probe_set, self.metric)
        return ProbeResult(scores, stderr, time.perf_counter() - start)

    def evaluate(self) -> EvalResult:
        """Mean score [K] on the held-out items of task utility (the ``"eval"`` split, or ``"validation"`` with
        ``final_items``; disjoint from the probe items); NaN for a capability not ``scored``."""
        return self._scores(self.eval_set, with_items=False)

    def final_evaluation(self) -> EvalResult:
        """Scores [K] on the ``final_items`` items of the ``"eval"`` split (NaN for a capability not ``scored``),
        with each item's score."""
        return self._scores(self.final_set, with_items=True)

    def _scores(self, sets: list[list[TrainExample]], with_items: bool) -> EvalResult:
        start = time.perf_counter()
        scores, counts, per_item = np.full(self.K, np.nan), np.zeros(self.K, dtype=int), [np.full(0, np.nan) for _ in range(self.K)]
        for k, group in zip(self.scored, item_scores(self.student, sets, self.metric)):
            scores[k], counts[k], per_item[k] = group.mean(), len(group), group
        return EvalResult(scores, counts, time.perf_counter() - start, per_item if with_items else [])

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

    def _replay(self, examples: list[TrainExample]) -> list[TrainExample]:
        """Pre-training examples of ``replay_share / (1 - replay_share)`` times the step's trained tokens."""
        tokens = sum(len(item) for item in examples)
        return self.sampler.replay(round(tokens * self.replay_share / (1.0 - self.replay_share)))

    def _lr_at(self, progress: float, tokens: int) -> Callable[[float], float] | None:
        """``lr * warmup_cosine`` at the budget share spent before each optimizer step (``None`` if constant)."""
        if self.lr_schedule == "constant":
            return None
        return budget_schedule(self.config.lr, progress, tokens / self.budget_tokens, self.warmup_share)
