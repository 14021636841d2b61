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
* **Packed** (``packed=True``, objective ``"sft"``): padding-free. The examples, in a seeded random order, fill
  optimizer steps of about ``tokens_per_step`` tokens (:func:`pack_steps`); a step's examples are concatenated
  into rows of at most ``micro_tokens`` tokens (one forward pass each, shape [1, T]), every example with its own
  position ids 0..len-1 and no attention across examples: a student with SDPA or eager attention runs
  :func:`packed_sdpa` (causal SDPA within each example: no [T, T] block-diagonal mask, whose off-diagonal blocks
  would be computed too), one with flash attention its variable-length kernel (``cu_seq_lens``); no padding is
  computed. The LM head and cross-entropy run on the answer
  positions only, ``ce_chunk`` positions at a time (:class:`AnswerCrossEntropy`: no [N, V] logits kept); the
  loss is summed on the device, one host sync per optimizer step. On OOM ``micro_tokens`` is halved.
* Full fine-tuning or LoRA (:func:`apply_lora`, peft), AdamW (fused on CUDA when packed), gradient clipping 1.0,
  bf16 autocast (``bf16``: ``"cuda"`` on CUDA only, ``"auto"`` also on CPUs with native bf16 matrix
  instructions (AVX512-BF16 or AMX, :func:`fast_bf16`), ``"off"`` never).
* **Learning rate**: constant, or set before each optimizer step by ``lr_at(share of the call's tokens
  done)`` (:meth:`Trainer.train`); :func:`warmup_cosine` over an episode's budget (:func:`budget_schedule`)
  is the schedule of distillation runs.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import BF16_MODES, LR_SCHEDULES  # re-exported: when Trainer autocasts to bf16; learning-rate schedules by name

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
    micro_batch: int = 0  # sequences a forward pass (padded loop) or tokens a row (packed), after any OOM halving
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


def warmup_cosine(progress: float, warmup: float = 0.1, floor: float = 0.1) -> float:
    """Learning-rate multiplier in [floor, 1] at ``progress`` in [0, 1] of a run: linear warm-up from 0 over the
    first ``warmup`` share, then cosine decay from 1 to ``floor`` at the end."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup:
        return progress / warmup
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * (progress - warmup) / (1.0 - warmup)))


def budget_schedule(lr: float, start: float, span: float, warmup: float) -> Callable[[float], float]:
    """``lr_at`` of :meth:`Trainer.train` for a call that trains the share [start, start + span] of a budget:
    ``lr * warmup_cosine(start + share * span, warmup)``."""
    return lambda share: lr * warmup_cosine(start + share * span, warmup)


def fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices natively: CUDA with bf16, or a CPU with AVX512-BF16 or AMX tiles."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


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


def _fill(examples: Iterable[TrainExample], limit: int) -> list[list[TrainExample]]:
    """``examples`` in order, cut into groups of at most ``limit`` tokens (a longer example is a group alone)."""
    groups: list[list[TrainExample]] = []
    size = limit
    for ex in examples:
        if size + len(ex) > limit:
            groups.append([])
            size = 0
        groups[-1].append(ex)
        size += len(ex)
    return groups


def pack_steps(examples: Sequence[TrainExample], tokens_per_step: int, rng: np.random.Generator) -> list[list[TrainExample]]:
    """Optimizer steps of the packed loop: ``examples`` in a random order (``rng``), each step filled while the next
    example fits in ``tokens_per_step`` tokens (a longer example is a step alone)."""
    return _fill((examples[i] for i in rng.permutation(len(examples))), tokens_per_step)


def pack_rows(batch: Sequence[TrainExample], micro_tokens: int) -> list[list[TrainExample]]:
    """An optimizer step's examples in order, cut into packed rows (forward passes) of at most ``micro_tokens`` tokens."""
    return _fill(batch, micro_tokens)


def packed_row(row: Sequence[TrainExample], device: str | torch.device) -> dict[str, torch.Tensor]:
    """One packed row: ``input_ids`` and ``position_ids`` [1, T] (T = the row's tokens; positions restart at 0 for
    each example), ``cu_seq_lens`` [n + 1] int32 (the examples' bounds: 0, len_1, len_1 + len_2, ..., T),
    ``positions`` [N] (the row positions that predict answer tokens) and ``targets`` [N] (those tokens), on ``device``."""
    ids, pos, bounds, positions, targets = [], [], [0], [], []
    for e in row:
        offset = bounds[-1]
        ids += e.input_ids
        pos += range(len(e))
        first = max(e.n_prompt, 1)
        positions += range(offset + first - 1, offset + len(e) - 1)
        targets += e.input_ids[first:]
        bounds.append(offset + len(e))
    tensors = {"input_ids": [ids], "position_ids": [pos], "positions": positions, "targets": targets}
    out = {name: torch.tensor(values, dtype=torch.long).to(device, non_blocking=True) for name, values in tensors.items()}
    out["cu_seq_lens"] = torch.tensor(bounds, dtype=torch.int32).to(device, non_blocking=True)
    return out


PACKED_ATTENTION = "read_env_packed_sdpa"
"""The attention implementation (transformers' ``AttentionInterface``) the packed loop uses in place of SDPA or eager."""


def packed_sdpa(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask, dropout: float = 0.0,
                scaling: float | None = None, cu_seq_lens_q: torch.Tensor | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers attention function for one packed row: causal SDPA within each example (bounds ``cu_seq_lens_q``),
    none across, and no [T, T] mask (a block-diagonal mask would compute every block of the row).
    ``query`` [1, H, T, D], ``key`` / ``value`` [1, H_kv, T, D] -> ([1, T, H, D], None)."""
    bounds = cu_seq_lens_q.tolist()
    gqa = query.shape[1] != key.shape[1]
    out = torch.cat([F.scaled_dot_product_attention(query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], dropout_p=dropout, scale=scaling,
                                                    is_causal=True, enable_gqa=gqa) for a, b in zip(bounds, bounds[1:])], dim=2)
    return out.transpose(1, 2).contiguous(), None


class AnswerCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of the logits ``hidden @ weight.T`` [N, V] against ``targets`` [N], ``chunk`` rows at a
    time, matmuls in ``dtype`` (autocast off), softmax and sums in fp32. The gradients are computed in the forward
    pass (scaled by the incoming one in backward), so no [N, V] logits are kept; the weight's gradient comes in
    the weight's own dtype (no cast of a [V, d] gradient).

    ``AnswerCrossEntropy.apply(hidden [N, d], weight [V, d], targets [N] long, chunk, dtype) -> scalar fp32``."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int, dtype: torch.dtype) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            for k in range(0, hidden.shape[0], chunk):
                h, t = hidden[k:k + chunk].to(dtype), targets[k:k + chunk]
                logits = (h @ w.T).float()
                lse = logits.logsumexp(-1)
                total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
                grad = logits.sub_(lse[:, None]).exp_()
                grad[torch.arange(len(t), device=t.device), t] -= 1.0
                grad = grad.to(dtype)
                if grad_hidden is not None:
                    grad_hidden[k:k + chunk] = grad @ w
                if grad_weight is not None:
                    grad_weight.addmm_(grad.T, h) if dtype == weight.dtype else grad_weight.add_(grad.T @ h)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (None if grad_hidden is None else grad_hidden.mul_(grad_total),
                None if grad_weight is None else grad_weight.mul_(grad_total), None, None, None)


class Trainer:
    """Owns the student's optimizer and runs budgeted training passes.

    Args:
        model: student causal LM (possibly a peft model).
        lr: AdamW learning rate; ``weight_decay`` AdamW decay.
        objective: ``"sft"`` or ``"kd"`` (then ``teacher`` is required and vocabularies must match).
        batch_size: sequences per optimizer step; ``micro_batch``: sequences per forward pass (padded loop).
        packed: the packed loop (see the module docstring): ``tokens_per_step`` tokens per optimizer step,
            ``micro_tokens`` tokens per forward pass, LM head and cross-entropy ``ce_chunk`` answer positions at a time.
        bf16: one of ``BF16_MODES``.
        fault_hook: called with the micro-batch size (sequences, or tokens when packed) before each forward (tests inject OOM).
    """

    def __init__(self, model, *, pad_id: int, lr: float = 2e-5, weight_decay: float = 0.0,
                 objective: str = "sft", teacher=None, kd_alpha: float = 1.0, kd_temperature: float = 1.0,
                 batch_size: int = 8, micro_batch: int = 8, max_grad_norm: float = 1.0, packed: bool = False,
                 tokens_per_step: int = 16_384, micro_tokens: int = 2048, ce_chunk: int = 1024, bf16: str = "cuda",
                 fault_hook: Callable[[int], None] | None = None):
        if objective not in ("sft", "kd"):
            raise ValueError(f"objective must be 'sft' or 'kd', got {objective!r}")
        if objective == "kd" and teacher is None:
            raise ValueError("objective='kd' needs a teacher model")
        if packed and objective != "sft":
            raise ValueError("packed=True trains objective='sft' only (logit KD runs on the padded loop)")
        if bf16 not in BF16_MODES:
            raise ValueError(f"bf16 must be one of {list(BF16_MODES)}, got {bf16!r}")
        self.model, self.teacher, self.objective = model, teacher, objective
        self.pad_id, self.kd_alpha, self.kd_temperature = pad_id, kd_alpha, kd_temperature
        self.batch_size, self.micro_batch, self.max_grad_norm = batch_size, micro_batch, max_grad_norm
        self.packed, self.tokens_per_step, self.micro_tokens, self.ce_chunk = packed, tokens_per_step, micro_tokens, ce_chunk
        if packed:
            from transformers import AttentionInterface

            AttentionInterface.register(PACKED_ATTENTION, packed_sdpa)
        self.fault_hook = fault_hook
        self.device = next(model.parameters()).device
        self.bf16 = {"cuda": self.device.type == "cuda", "auto": fast_bf16(self.device), "off": False}[bf16]
        self.params = [p for p in model.parameters() if p.requires_grad]
        fused = {"fused": True} if packed and self.device.type == "cuda" else {}
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay, **fused)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

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

    def _row_loss(self, row: Sequence[TrainExample]) -> torch.Tensor:
        """Summed cross-entropy of one packed row's answer tokens (a scalar on the device, backward-ready)."""
        b = packed_row(row, self.device)
        decoder = self.model.get_decoder()
        config, implementation = decoder.config, decoder.config._attn_implementation
        bounds = {"cu_seq_lens_q": b["cu_seq_lens"], "cu_seq_lens_k": b["cu_seq_lens"], "max_length_q": max(map(len, row)),
                  "max_length_k": max(map(len, row))}  # flash attention's variable-length arguments
        try:
            if implementation in ("sdpa", "eager"):
                config._attn_implementation = PACKED_ATTENTION
            with self._autocast():
                hidden = decoder(input_ids=b["input_ids"], position_ids=b["position_ids"], use_cache=False, **bounds).last_hidden_state
        finally:
            config._attn_implementation = implementation
        weight = self.model.get_output_embeddings().weight
        return AnswerCrossEntropy.apply(hidden[0].index_select(0, b["positions"]), weight, b["targets"], self.ce_chunk,
                                        torch.bfloat16 if self.bf16 else weight.dtype)

    def accumulate(self, batch: Sequence[TrainExample], stats: TrainStats) -> torch.Tensor:
        """Gradients of the packed loop's loss on ``batch`` (sum of answer-token losses / answer tokens) in the
        parameters' ``.grad``; returns that mean loss (a device scalar). OOM halves ``micro_tokens`` and retries."""
        denom = sum(len(e) - e.n_prompt for e in batch)
        while True:
            self.optimizer.zero_grad(set_to_none=True)
            total = torch.zeros((), device=self.device)
            rows = pack_rows(batch, self.micro_tokens)
            try:
                for row in rows:
                    if self.fault_hook is not None:
                        self.fault_hook(sum(len(e) for e in row))
                    loss = self._row_loss(row)
                    (loss / denom).backward()
                    total += loss.detach()
                return total / denom
            except torch.OutOfMemoryError:
                self.optimizer.zero_grad(set_to_none=True)
                if len(rows) == len(batch):
                    raise
                self.micro_tokens = max(1, self.micro_tokens // 2)
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
        batches = pack_steps(examples, self.tokens_per_step, rng) if self.packed else length_batches(examples, self.batch_size, rng)
        for batch in batches:
            if lr_at is not None:
                for group in self.optimizer.param_groups:
                    group["lr"] = lr_at(stats.tokens / total)
            mean = self.accumulate(batch, stats).item() if self.packed else self._run_batch(batch, stats)
            if self.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            stats.record(batch, mean)
        self.model.eval()
        stats.finish(self.micro_tokens if self.packed else self.micro_batch, time.perf_counter() - t0)
        return stats
