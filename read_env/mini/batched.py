"""Batched students: M ``ReAD-Mini`` episodes of fixed schedules trained in lockstep as one batched model.

    episodes = run_batched([Member("math", 0, schedule_a), Member("code", 1, schedule_b)], "ReAD-Mini-v1")

Member ``m`` is the episode of ``gym.make(env_id, **env_kwargs)`` reset with ``seed`` and ``options={"task":
task}`` and stepped with the actions of its ``schedule`` [T, C] (the environment's ``action_mode``; T =
``num_steps``, C capabilities). Every member keeps the single episode's own code on a scratch environment of
its own: the reset (task, distiller seed, start measurement), the teacher's answers under the budget rule
(:meth:`~read_env.distill.distiller.Distiller.draft` and ``book``: ledger, carry), the optimizer batches
(:func:`~read_env.distill.training.length_batches` on the member's generator), their learning rates (its
``lr_at``), and the reward and info (``AllocationEnv.record_step``). Only the students' arithmetic is batched:

* :class:`StackedStudents` holds the M students as stacked parameters [M, ...] and runs one student module
  over them with ``torch.func.vmap(functional_call)``: ``input_ids`` [M, B, L] (or [B, L] shared by all) ->
  ``logits`` [M, B, L, V].
* Training (:func:`train_lockstep`): optimizer step j trains every member's j-th batch, in groups of members
  whose batches have similar longest sequences (:func:`length_groups`), each group padded to [G, B, L] (B its
  largest batch, L its longest sequence; padding rows and positions are labelled -100). Each member's loss is
  the sum of its token losses / its batch's label tokens, as in :class:`~read_env.distill.training.Trainer`, so
  the gradient [M, ...] of the summed losses is each member's own; then per member gradient clipping (its global
  norm) and AdamW (its step count and learning rate [M]). Members with fewer batches sit the last steps out,
  with parameters and AdamW state unchanged.
* Probes and evaluation: :func:`~read_env.mini.backend.accuracy` of the stack gives [M, C] scores.

Sequences are right-padded, so a real position never attends to padding: no attention mask is needed, and each
member's loss, gradient and scores equal its single episode's up to the order of floating-point sums (the
batched matrix products sum in another order; ``tests/test_mini_batched.py`` states the tolerance). Fixed
schedules only: adaptive agents, which act on each step's observation, play single episodes.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from read_env import contract
from read_env.distill.evaluation import EvalResult
from read_env.distill.ledger import largest_remainder_split
from read_env.distill.probes import ProbeResult
from read_env.distill.training import TrainExample, TrainStats, collate, length_batches
from read_env.mini.backend import accuracy
from read_env.mini.env import MiniEnv
from read_env.mini.student import PAD


LENGTH_SLACK = 1.5
"""A lockstep optimizer step pads members' batches to a common length only within groups whose longest sequences
differ by at most this factor (:func:`length_groups`): fewer, larger groups batch more; smaller ones pad less."""


@dataclass(frozen=True)
class Member:
    """One episode: its task, reset seed and actions [T, C] (one per step, in the environment's ``action_mode``)."""

    task: str
    seed: int
    schedule: Any


@dataclass
class BatchedEpisode:
    """What a member's single episode gives: ``infos`` (reset's, then each step's), ``rewards`` [T], ``profiles``
    [T + 1, C] (start and after each step) and ``final_scores`` [C] (held-out evaluation after the last step)."""

    task: str
    seed: int
    infos: list[dict[str, Any]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    profiles: list[np.ndarray] = field(default_factory=list)
    final_scores: np.ndarray | None = None


class StackedStudents:
    """M students of one architecture as stacked trainable parameters [M, ...] on ``device``, with AdamW state.

    Args:
        students: the M student modules (same architecture; their trainable parameters are copied).
        optimizer: a member's AdamW, whose hyperparameters (``lr``, ``betas``, ``eps``, ``weight_decay``) all use.
        device: where the stack lives and computes.
    """

    def __init__(self, students: Sequence[torch.nn.Module], optimizer: torch.optim.Optimizer, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.module = copy.deepcopy(students[0]).to(self.device)
        self.module.set_attn_implementation("eager")  # vmap batches eager attention; sdpa's CPU kernel has no batching rule (a loop)
        named = [dict(student.named_parameters()) for student in students]
        self.params = {name: torch.stack([params[name].detach() for params in named]).to(self.device).requires_grad_()
                       for name, parameter in named[0].items() if parameter.requires_grad}
        self.exp_avg = {name: torch.zeros_like(value) for name, value in self.params.items()}
        self.exp_avg_sq = {name: torch.zeros_like(value) for name, value in self.params.items()}
        self.members = len(students)
        group = optimizer.param_groups[0]
        self.betas, self.eps, self.weight_decay = group["betas"], group["eps"], group["weight_decay"]
        self.steps = torch.zeros(self.members, device=self.device)
        self.lr = torch.full((self.members,), float(group["lr"]), device=self.device)  # [M], set per step by each member's lr_at

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, logits_to_keep: Any = 0) -> SimpleNamespace:
        """``logits`` [M, B, len(keep), V] of ``input_ids`` [B, L] for every member; right padding needs no
        ``attention_mask`` (ignored)."""
        return SimpleNamespace(logits=self._logits(self.params, input_ids.to(self.device), logits_to_keep))

    def _logits(self, params: dict[str, torch.Tensor], ids: torch.Tensor, logits_to_keep: Any) -> torch.Tensor:
        """Logits [G, B, len(keep), V] of G stacked students ``params`` on ``ids`` [G, B, L] (or [B, L] for all)."""
        def call(member: dict[str, torch.Tensor], member_ids: torch.Tensor) -> torch.Tensor:
            return functional_call(self.module, member, (member_ids,), {"logits_to_keep": logits_to_keep}).logits

        return vmap(call, in_dims=(0, 0 if ids.dim() == 3 else None))(params, ids)

    def train_step(self, batches: Sequence[Sequence[TrainExample] | None], max_grad_norm: float) -> list[float]:
        """One optimizer step of every member with a batch (``None``: sits out): its mean token loss, else nan.
        Members train in groups of similar lengths (:func:`length_groups`), each padded to its own [G, B, L]."""
        means = [float("nan")] * self.members
        for group in length_groups(batches):
            summed, denom = self._group_loss(group, [batches[m] for m in group])
            (summed / denom).sum().backward()  # each member's gradient [M, ...] accumulates over the groups
            for m, value, count in zip(group, summed.tolist(), denom.tolist()):
                means[m] = value / count
        self._adamw(torch.tensor([bool(batch) for batch in batches], device=self.device), max_grad_norm)
        return means

    def _group_loss(self, group: list[int], batches: list[Sequence[TrainExample]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sums of token losses [G] of members ``group`` on their ``batches``, and their label tokens [G]."""
        size, length = max(len(batch) for batch in batches), max(len(item) for batch in batches for item in batch)
        ids = torch.full((len(group), size, length), PAD, dtype=torch.long)
        labels = torch.full((len(group), size, length), -100, dtype=torch.long)
        for row, batch in enumerate(batches):
            collated = collate(batch, PAD, "cpu")
            ids[row, : len(batch), : collated["input_ids"].shape[1]] = collated["input_ids"]
            labels[row, : len(batch), : collated["labels"].shape[1]] = collated["labels"]
        start = max(min(item.n_prompt for batch in batches for item in batch) - 1, 0)
        keep = torch.arange(start, length - 1, device=self.device)  # positions predicting tokens start+1..L-1
        target = labels[:, :, start + 1 :].to(self.device)
        index = torch.tensor(group, device=self.device)
        logits = self._logits({name: value[index] for name, value in self.params.items()}, ids.to(self.device), keep).float()
        token_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
        denom = [sum(len(item) - item.n_prompt for item in batch) for batch in batches]
        return token_loss.view(len(group), -1).sum(dim=1), torch.tensor(denom, device=self.device, dtype=logits.dtype)

    @torch.no_grad()
    def _adamw(self, active: torch.Tensor, max_grad_norm: float) -> None:
        """Per member: clip the gradient to global norm ``max_grad_norm`` (as ``clip_grad_norm_``), then AdamW
        (as ``torch.optim.AdamW``) where ``active`` [M]; gradients are cleared."""
        grads = {name: value.grad for name, value in self.params.items()}
        shape = lambda tensor: (-1,) + (1,) * (tensor.dim() - 1)  # noqa: E731 - [M] broadcast over a parameter
        if max_grad_norm:
            norm = torch.stack([grad.flatten(1).norm(dim=1) for grad in grads.values()], dim=1).norm(dim=1)
            scale = torch.clamp(max_grad_norm / (norm + 1e-6), max=1.0)
            grads = {name: grad * scale.view(shape(grad)) for name, grad in grads.items()}
        self.steps += active
        beta1, beta2 = self.betas
        steps = self.steps.clamp(min=1)
        step_size = self.lr / (1 - beta1**steps)
        root = torch.sqrt(1 - beta2**steps)
        for name, param in self.params.items():
            grad, keep = grads[name], active.view(shape(param))
            exp_avg = torch.where(keep, self.exp_avg[name].lerp(grad, 1 - beta1), self.exp_avg[name])
            exp_avg_sq = torch.where(keep, self.exp_avg_sq[name] * beta2 + (1 - beta2) * grad * grad, self.exp_avg_sq[name])
            decayed = param * (1 - self.lr * self.weight_decay).view(shape(param))
            updated = decayed - step_size.view(shape(param)) * exp_avg / (exp_avg_sq.sqrt() / root.view(shape(param)) + self.eps)
            param.copy_(torch.where(keep, updated, param))
            self.exp_avg[name], self.exp_avg_sq[name] = exp_avg, exp_avg_sq
            param.grad = None


def length_groups(batches: Sequence[Sequence[TrainExample] | None], slack: float = LENGTH_SLACK) -> list[list[int]]:
    """The members with a batch, sorted by their batch's longest sequence and grouped while it is at most ``slack``
    times the group's first (so padding to the group's longest costs at most ``slack`` times the tokens)."""
    longest = {m: max(len(item) for item in batch) for m, batch in enumerate(batches) if batch}
    groups: list[list[int]] = []
    for m in sorted(longest, key=longest.__getitem__):
        if groups and longest[m] <= slack * longest[groups[-1][0]]:
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def train_lockstep(students: StackedStudents, work: Sequence[tuple[list[TrainExample], np.random.Generator, Any]],
                   batch_size: int, micro_batch: int, max_grad_norm: float) -> list[TrainStats]:
    """One training pass of each member over its examples, in lockstep (:class:`StackedStudents.train_step`).

    ``work[m]`` = (examples, the generator that orders its batches, ``lr_at`` or ``None``), as
    :meth:`~read_env.distill.training.Trainer.train` takes them; returns each member's :class:`TrainStats` (with
    ``micro_batch``, the single trainer's: a batched step trains whole batches)."""
    started = time.perf_counter()
    batches = [length_batches(examples, batch_size, rng) for examples, rng, _ in work]
    totals = [sum(len(item) for item in examples) for examples, _, _ in work]
    stats = [TrainStats() for _ in work]
    for j in range(max((len(member) for member in batches), default=0)):
        step = [member[j] if j < len(member) else None for member in batches]
        for m, (_, _, lr_at) in enumerate(work):
            if step[m] is not None and lr_at is not None:
                students.lr[m] = lr_at(stats[m].tokens / totals[m])
        for m, mean in enumerate(students.train_step(step, max_grad_norm)):
            if step[m] is not None:
                stats[m].record(step[m], mean)
    for member in stats:
        member.finish(micro_batch, time.perf_counter() - started)
    return stats


def _allocations(members: Sequence[Member], num_steps: int, capabilities: int, action_mode: str, temperature: float) -> list[np.ndarray]:
    """Each member's executed allocations [T, C]; raises ``ValueError`` naming the member on a bad schedule or seed."""
    allocations = []
    for index, member in enumerate(members):
        schedule = np.asarray(member.schedule)
        if schedule.dtype.kind not in "fiu" or schedule.shape != (num_steps, capabilities):
            raise ValueError(f"member {index}: schedule must be numbers of shape ({num_steps}, {capabilities}) (num_steps, capabilities), "
                             f"got {schedule.dtype} {schedule.shape}")
        if isinstance(member.seed, bool) or not isinstance(member.seed, (int, np.integer)):
            raise ValueError(f"member {index}: seed must be an integer, got {member.seed!r}")
        try:
            allocations.append(contract.allocation_from_action(schedule, action_mode, temperature, schedule.shape))
        except ValueError as error:
            raise ValueError(f"member {index}: {error}") from None
    return allocations


def run_batched(members: Sequence[Member], env_id: str = "ReAD-Mini-v1", env_kwargs: Mapping[str, Any] | None = None,
                device: str | torch.device = "cpu") -> list[BatchedEpisode]:
    """Play each member's episode of ``gym.make(env_id, **env_kwargs)`` with one batched student on ``device``
    (see the module docstring); the M episodes in the members' order."""
    if not members:
        raise ValueError("members is empty: give at least one Member(task, seed, schedule)")
    with tempfile.TemporaryDirectory(prefix="batched-students-") as scratch:
        envs = [gym.make(env_id, **{**dict(env_kwargs or {}), "run_dir": scratch, "scratch": True}).unwrapped for _ in members]
        try:
            return _play(members, envs, device)
        finally:
            for env in envs:
                env.close()


def _play(members: Sequence[Member], envs: list[Any], device: str | torch.device) -> list[BatchedEpisode]:
    first = envs[0]
    if not isinstance(first, MiniEnv):
        raise ValueError(f"batched students play ReAD-Mini environments, got {type(first).__name__}")
    if first.training["lora"]:
        raise ValueError("batched students train every weight: lora=True is not supported here")
    if first.training["final_items"]:
        raise ValueError("batched students score every capability on one held-out set: final_items (ReAD-Mini-v2's per-task validation and "
                         "final evaluation) is not supported here; play those episodes singly or set final_items=0")
    allocations = _allocations(members, first.num_steps, len(first.capabilities), first.action_mode, first.logit_temperature)
    episodes = [BatchedEpisode(member.task, int(member.seed)) for member in members]
    for env, member, episode in zip(envs, members, episodes):
        _, info = env.reset(seed=int(member.seed), options={"task": member.task})
        episode.infos.append(info)
        episode.profiles.append(env.profile)
    distillers = [env.distiller for env in envs]
    students = StackedStudents([d.student for d in distillers], distillers[0].trainer.optimizer, device)
    probe_set, eval_set, metric = distillers[0].probe_set, distillers[0].eval_set, distillers[0].metric
    trainer = distillers[0].trainer
    eval_counts = np.array([len(group) for group in eval_set])
    for t in range(first.num_steps):
        tokens = int(first.step_tokens[t])
        final = first.spends_remainder and t + 1 == first.num_steps
        splits = [largest_remainder_split(tokens, allocation[t]) for allocation in allocations]
        drafts = [d.draft(split, env.tokens_used_total / env.budget_tokens, final) for d, env, split in zip(distillers, envs, splits)]
        work = [(draft.examples + draft.replay, d.np_rng, draft.lr_at) for draft, d in zip(drafts, distillers)]
        stats = train_lockstep(students, work, trainer.batch_size, trainer.micro_batch, trainer.max_grad_norm)
        reports = [d.book(draft, member_stats) for d, draft, member_stats in zip(distillers, drafts, stats)]
        profiles, stderrs = accuracy(students, probe_set, metric)
        scores, _ = accuracy(students, eval_set, metric)
        for m, (env, report, episode) in enumerate(zip(envs, reports, episodes)):
            probe = distillers[m].probe_after(report, partial(ProbeResult, profiles[m], stderrs[m], 0.0))
            utility = EvalResult(scores[m], eval_counts, 0.0).utility(env.requirement)
            extra = env.step_extra(splits[m], report, probe, distillers[m].totals(), True)
            _, reward, _, _, info = env.record_step(allocations[m][t], tokens, probe.profile, utility, extra)
            episode.infos.append(info)
            episode.rewards.append(reward)
            episode.profiles.append(probe.profile)
            episode.final_scores = scores[m]
    return episodes
