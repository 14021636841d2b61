"""A small, owned student training loop (no TRL).

* **Examples**: student chat prompt tokens + teacher answer tokens; labels are ``-100`` on the
  prompt (and padding), so the loss is token-level cross-entropy on the teacher's completion.
* **Objectives**: ``"sft"`` (cross-entropy on teacher tokens, i.e. sequence-level KD) or ``"kd"``
  (``(1 - kd_alpha) * CE + kd_alpha * KL(teacher || student)`` over the vocabulary at answer
  positions, temperature ``kd_temperature``); KD requires identical vocabularies
  (:func:`check_same_vocab` raises :class:`VocabularyMismatchError` otherwise).
* **Batches**: examples are sorted by length and chunked into optimizer batches of
  ``batch_size`` sequences (length bucketing: little padding), batch order shuffled by a seeded
  generator; each batch is split into micro-batches of at most ``micro_batch`` sequences with
  gradient accumulation. The loss of a batch is the sum of token losses / its label tokens, so
  the micro-batch size does not change the update. Logits are computed only from the first
  answer position on (``logits_to_keep``), which skips most of the LM-head work on prompts.
* **Budget**: :func:`fit_budget` cuts an example list to an exact training-token budget
  (prompt + answer tokens, never padding), truncating the last example's answer.
* **OOM**: on ``torch.OutOfMemoryError`` (CUDA OOM; ``fault_hook`` lets tests inject one) the
  batch's partial gradients are discarded, the micro-batch is halved and the batch retried;
  tokens are counted once, when the batch completes.
* Full fine-tuning or LoRA (:func:`apply_lora`, peft), AdamW, gradient clipping 1.0, bf16
  autocast on CUDA.
* **Learning rate**: constant, or set before each optimizer step by ``lr_at(share of the call's tokens
  done)`` (:meth:`Trainer.train`); :func:`warmup_cosine` is the schedule of distillation runs.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class VocabularyMismatchError(ValueError):
    """Logit-level KD was requested for a teacher and student with different vocabularies."""


@dataclass
class TrainExample:
    """``input_ids`` = prompt + answer tokens (student vocabulary); first ``n_prompt`` masked."""

    input_ids: list[int]
    n_prompt: int
    capability: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    def labels(self) -> list[int]:
        return [-100] * self.n_prompt + self.input_ids[self.n_prompt:]


@dataclass
class TrainStats:
    loss: float = float("nan")  # token-weighted mean loss over the call
    losses: list[float] = field(default_factory=list)  # per optimizer step
    tokens: int = 0  # prompt + answer tokens trained (no padding)
    label_tokens: int = 0
    tokens_per_capability: dict[int, int] = field(default_factory=dict)
    steps: int = 0
    micro_batch: int = 0
    oom_retries: int = 0
    seconds: float = 0.0
    weighted_loss: float = 0.0  # sum over optimizer steps of mean loss x label tokens

    def record(self, batch: Sequence[TrainExample], mean: float) -> None:
        """Count an optimizer batch that completed with mean token loss ``mean`` (its tokens once, after it succeeded)."""
        n_lab = sum(len(e) - e.n_prompt for e in batch)
        self.losses.append(mean)
        self.weighted_loss += mean * n_lab
        self.label_tokens += n_lab
        self.steps += 1
        for e in batch:
            self.tokens += len(e)
            self.tokens_per_capability[e.capability] = self.tokens_per_capability.get(e.capability, 0) + len(e)

    def finish(self, micro_batch: int, seconds: float) -> None:
        """Close a training call: the token-weighted mean loss, the micro-batch size in use and the call's seconds."""
        self.loss = self.weighted_loss / self.label_tokens if self.label_tokens else float("nan")
        self.micro_batch, self.seconds = micro_batch, seconds


def check_same_vocab(teacher, teacher_tok, student, student_tok) -> None:
    """Raise :class:`VocabularyMismatchError` unless logits index the same tokens."""
    t_out = teacher.get_output_embeddings().weight.shape[0]
    s_out = student.get_output_embeddings().weight.shape[0]
    if t_out != s_out:
        raise VocabularyMismatchError(f"logit KD needs one vocabulary: teacher has {t_out} logits, "
                                      f"student {s_out}; use objective='sft' (sequence-level KD)")
    if teacher_tok.get_vocab() != student_tok.get_vocab():
        raise VocabularyMismatchError("logit KD needs one vocabulary: teacher and student tokenizers "
                                      "differ; use objective='sft' (sequence-level KD)")


def apply_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.0,
               target_modules: Sequence[str] = LORA_TARGETS):
    """Wrap ``model`` with LoRA adapters (peft); only adapter weights stay trainable."""
    from peft import LoraConfig, get_peft_model

    present = {n.split(".")[-1] for n, _ in model.named_modules()}
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none", task_type="CAUSAL_LM",
                     target_modules=[t for t in target_modules if t in present])
    with warnings.catch_warnings():  # peft reads transformers' deprecated alias is_gradient_checkpointing (a FutureWarning per call)
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(model, cfg)


LR_SCHEDULES = ("constant", "warmup_cosine")
"""Learning-rate schedules by name: a constant rate, or :func:`warmup_cosine` over a run."""


def warmup_cosine(progress: float, warmup: float = 0.1, floor: float = 0.1) -> float:
    """Learning-rate multiplier in [floor, 1] at ``progress`` in [0, 1] of a run: linear warm-up from 0 over the
    first ``warmup`` share, then cosine decay from 1 to ``floor`` at the end."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return progress / warmup
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / (1.0 - warmup)))


def fit_budget(examples: Sequence[TrainExample], budget: int) -> tuple[list[TrainExample], int]:
    """Longest prefix of ``examples`` within ``budget`` tokens; the last one is truncated
    (keeping its prompt and >= 1 answer token) when it does not fit whole. Returns (kept, used)."""
    kept, used = [], 0
    for ex in examples:
        left = budget - used
        if len(ex) <= left:
            kept.append(ex)
            used += len(ex)
            continue
        if left >= ex.n_prompt + 1:
            kept.append(TrainExample(ex.input_ids[:left], ex.n_prompt, ex.capability))
            used += left
        break
    return kept, used


def length_batches(examples: Sequence[TrainExample], batch_size: int,
                   rng: np.random.Generator) -> list[list[TrainExample]]:
    """Length-bucketed optimizer batches (sorted by length, chunked, batch order shuffled)."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i]), i))
    chunks = [[examples[i] for i in order[k:k + batch_size]] for k in range(0, len(order), batch_size)]
    return [chunks[i] for i in rng.permutation(len(chunks))]


def collate(batch: Sequence[TrainExample], pad_id: int, device: str | torch.device) -> dict[str, torch.Tensor]:
    """``input_ids``, ``labels`` (-100 on prompt and padding) and ``attention_mask``, each [B, L] on ``device``: the
    B examples right-padded with ``pad_id`` to the longest, L."""
    L = max(len(e) for e in batch)
    ids = torch.full((len(batch), L), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), L), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), L), dtype=torch.long)
    for i, e in enumerate(batch):
        ids[i, :len(e)] = torch.tensor(e.input_ids)
        labels[i, :len(e)] = torch.tensor(e.labels())
        mask[i, :len(e)] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


class Trainer:
    """Owns the student's optimizer and runs budgeted training passes.

    Args:
        model: student causal LM (possibly a peft model).
        lr: AdamW learning rate; ``weight_decay`` AdamW decay.
        objective: ``"sft"`` or ``"kd"`` (then ``teacher`` is required and vocabularies must match).
        batch_size: sequences per optimizer step; ``micro_batch``: sequences per forward pass.
        fault_hook: called with the micro-batch size before each forward (tests inject OOM).
    """

    def __init__(self, model, *, pad_id: int, lr: float = 2e-5, weight_decay: float = 0.0,
                 objective: str = "sft", teacher=None, kd_alpha: float = 1.0, kd_temperature: float = 1.0,
                 batch_size: int = 8, micro_batch: int = 8, max_grad_norm: float = 1.0,
                 fault_hook: Callable[[int], None] | None = None):
        if objective not in ("sft", "kd"):
            raise ValueError(f"objective must be 'sft' or 'kd', got {objective!r}")
        if objective == "kd" and teacher is None:
            raise ValueError("objective='kd' needs a teacher model")
        self.model, self.teacher, self.objective = model, teacher, objective
        self.pad_id, self.kd_alpha, self.kd_temperature = pad_id, kd_alpha, kd_temperature
        self.batch_size, self.micro_batch, self.max_grad_norm = batch_size, micro_batch, max_grad_norm
        self.fault_hook = fault_hook
        self.device = next(model.parameters()).device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _micro_loss(self, micro: Sequence[TrainExample], denom: int) -> tuple[torch.Tensor, float]:
        """Backward-ready loss (sum of token losses / ``denom``) and its float sum."""
        b = collate(micro, self.pad_id, self.device)
        start = max(min(e.n_prompt for e in micro) - 1, 0)
        L = b["input_ids"].shape[1]
        keep = torch.arange(start, L - 1, device=self.device)  # positions predicting tokens start+1..L-1
        target = b["labels"][:, start + 1:]
        valid = target != -100
        with self._autocast():
            logits = self.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                logits_to_keep=keep).logits.float()
        ce = F.cross_entropy(logits[valid], target[valid], reduction="sum")
        loss = ce
        if self.objective == "kd":
            with torch.no_grad(), self._autocast():
                t_logits = self.teacher(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                                        logits_to_keep=keep).logits.float()
            T = self.kd_temperature
            t_logp = F.log_softmax(t_logits[valid] / T, dim=-1)
            s_logp = F.log_softmax(logits[valid] / T, dim=-1)
            kl = (t_logp.exp() * (t_logp - s_logp)).sum() * T * T
            loss = (1 - self.kd_alpha) * ce + self.kd_alpha * kl
        return loss / denom, float(loss.detach())

    def _run_batch(self, batch: Sequence[TrainExample], stats: TrainStats) -> float:
        denom = sum(len(e) - e.n_prompt for e in batch)
        while True:
            self.optimizer.zero_grad(set_to_none=True)
            total = 0.0
            try:
                for k in range(0, len(batch), self.micro_batch):
                    micro = batch[k:k + self.micro_batch]
                    if self.fault_hook is not None:
                        self.fault_hook(len(micro))
                    loss, s = self._micro_loss(micro, denom)
                    loss.backward()
                    total += s
                return total / denom
            except torch.OutOfMemoryError:
                self.optimizer.zero_grad(set_to_none=True)
                if self.micro_batch <= 1:
                    raise
                self.micro_batch = max(1, self.micro_batch // 2)
                stats.oom_retries += 1
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    def train(self, examples: Sequence[TrainExample], rng: np.random.Generator,
              lr_at: Callable[[float], float] | None = None) -> TrainStats:
        """One pass over ``examples`` (each token trained once). Returns :class:`TrainStats`.

        ``lr_at``: when given, the learning rate of each optimizer step is ``lr_at(share of the call's tokens
        trained before it, in [0, 1))``; otherwise the optimizer's learning rate is left as it is."""
        stats = TrainStats()
        t0 = time.perf_counter()
        self.model.train()
        total = sum(len(e) for e in examples)
        for batch in length_batches(examples, self.batch_size, rng):
            if lr_at is not None:
                for group in self.optimizer.param_groups:
                    group["lr"] = lr_at(stats.tokens / total)
            mean = self._run_batch(batch, stats)
            if self.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            stats.record(batch, mean)
        self.model.eval()
        stats.finish(self.micro_batch, time.perf_counter() - t0)
        return stats
