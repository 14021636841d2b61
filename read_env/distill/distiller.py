"""The real-distillation backend driven by the environment: :class:`Distiller`.

API (all token counts are integers; ``K = len(capabilities)``)::

    d = Distiller(capabilities, DistillerConfig(...), run_dir="runs/x/episode-0000", device="auto", seed=0)
    d.begin(requirement [K])       -> StepOutcome (profile and utility of the untrained student; checkpoint-0)
    d.step(tokens [K], progress in [0,1], requirement [K] or None, final) -> StepOutcome (distill, probe,
                                      utility, checkpoint-N; N = completed steps)
    d.rollback(N)                  # back to checkpoint-N: student, optimizer, random states, ledger
    d.totals()                     -> {"allotted", "generated", "trained", "spent", "carry"} (tokens)
    d.prune_checkpoints(N); d.finish()   # keep only checkpoint-N; end of episode (config.keep_after_episode)
    d.probe() -> ProbeResult; d.distill(tokens, progress, final) -> StepReport; d.utility(requirement) -> float

The models come from :func:`~read_env.distill.models.load_models` (pass ``models=`` to reuse those of an
earlier episode, and with them the untrained student's measurement); the teacher answers through its engine
(:mod:`read_env.distill.engines`), or from a teacher pool (``config.teacher_pool``: :mod:`read_env.distill.pool`).

A step (:meth:`Distiller.distill`) follows the budget rule of :mod:`read_env.distill.ledger`:
the carried remainder is added to ``tokens`` in proportion to ``tokens``; each capability's
allotment is split into a teacher-generation cap and student-training tokens; prompts of that
capability are drawn with the curriculum at ``progress``; the teacher answers them within the
generation budget (:meth:`Distiller._answers`, what a backend with another teacher overrides); the examples are cut to the training budget; the student is trained one pass
over the step's examples of all capabilities (mixed, length-bucketed). The step is appended to
``run_dir/ledger.jsonl``. Spending never exceeds ``sum(tokens) + carry_in``, and the cumulative
spend never exceeds the cumulative ``tokens`` given.

What a capability's allotment cannot use (less than its next prompt plus ``min_new_tokens`` answer tokens,
counted twice) is carried into the next step. The episode's last step (``final=True``) pools what its
capabilities leave and spends it under the same rule on more answers of at least one token, most-allotted
capability first, so an episode ends with less than the shortest next prompt plus two tokens unspent (rather
than up to a prompt and ``2 * min_new_tokens`` per capability).

Resuming: :meth:`save_checkpoint` (crash-safe, :mod:`read_env.distill.checkpoint`) stores the trainable weights (full model or LoRA adapter), the
optimizer, torch / numpy / python random states, the prompt-sampler state and the ledger entries;
:meth:`load_checkpoint` on a Distiller built with the same arguments restores them and rewrites
the ledger to the checkpoint's entries, so the next step is identical to the uninterrupted run's
and no token is lost or counted twice.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import banks, decontamination
from .checkpoint import start_folder, write_folder
from .config import DistillerConfig
from .evaluation import EvalResult, Evaluator
from .generation import GenerationResult, SamplingConfig, chat_text, generate_budgeted, generate_budgeted_together
from .ledger import LedgerEntry, LedgerError, TokenLedger, largest_remainder_split, split_generation_training
from .models import LoadedModels, load_models
from .probes import ProbeResult, ProbeSuite
from .pool import PoolMissError, pool_engine
from .prompts import BUCKETS, CAPABILITIES, Prompt, PromptSampler, PromptStreams, text_hash
from .run_store import checkpoint_path, prune_checkpoints
from .training import TrainExample, Trainer, TrainStats, apply_lora, budget_schedule, check_same_vocab, fit_budget


@dataclass
class StepReport:
    """What one :meth:`Distiller.distill` call did. Token fields in tokens, times in seconds."""

    step: int
    tokens_allotted: int  # sum of the ``tokens`` argument
    carry_in: int
    carry_out: int
    tokens_generated: int
    tokens_trained: int
    generated: np.ndarray  # [K] teacher tokens per capability
    trained: np.ndarray  # [K] student tokens per capability
    examples: int
    loss: float  # token-weighted mean training loss of the step (nan when nothing was trained)
    seconds: float
    generation_seconds: float
    training_seconds: float
    micro_batch: int  # sequences a forward pass at the step's end (padded loop), or tokens a row (packed: micro_tokens)
    oom_retries: int = 0

    @property
    def tokens_spent(self) -> int:
        return self.tokens_generated + self.tokens_trained


@dataclass
class StepDraft:
    """A step of :meth:`Distiller.distill` up to training (:meth:`Distiller.draft`); token arrays [K] int64."""

    allotted: np.ndarray  # the step's allotment per capability
    carry_in: int
    generated: np.ndarray  # teacher tokens per capability
    trained: np.ndarray  # planned student tokens per capability
    examples: list[TrainExample]  # the teacher's answers, within the budget
    replay: list[TrainExample]  # trained beside them, outside the budget (capability -1)
    lr_at: Callable[[float], float] | None  # the learning rate over the step (Trainer.train)
    progress: float
    started: float  # time.perf_counter() at the start of the step
    generation_seconds: float


@dataclass
class StepOutcome:
    """What :meth:`Distiller.begin` / :meth:`Distiller.step` measured; ``totals`` are the ledger's after it."""

    report: StepReport | None  # None after begin()
    probe: ProbeResult
    utility: float | None  # None when not measured this step
    totals: dict[str, int]
    evaluation: EvalResult | None = None  # the evaluation behind ``utility`` (its standard errors)


def sampler_options(capabilities: Sequence[str], config: DistillerConfig, probes: ProbeSuite | None = None,
                    evaluator: Evaluator | None = None) -> dict[str, Any]:
    """The keyword arguments generation prompts of ``capabilities`` are drawn with (:class:`PromptSampler` and
    :class:`PromptStreams`): ``forbidden`` hashes (probe and evaluation items, the legacy banks' probe and evaluation
    splits), the banks' generation splits, ``bank_share`` and the capabilities whose template fills are split by role
    (``item_source="full_splits"``)."""
    evaluator = evaluator or Evaluator(capabilities, config.eval_items, config.use_banks, config.eval_max_new_tokens,
                                       item_source=config.item_source, clip_items=config.clip_items)
    probes = probes or ProbeSuite(capabilities, config.probe_items, config.use_banks, config.probe_score, evaluator.hashes(),
                                  config.eval_max_new_tokens, config.item_source, config.clip_items)
    forbidden = probes.hashes() | evaluator.hashes()
    gen_banks: dict[str, list[Prompt]] = {}
    if config.item_source == "full_splits":
        gen_banks = {c: decontamination.held_out_splits(c, config.use_banks)["generation"] for c in capabilities}
    elif config.use_banks:
        for c in capabilities:
            split = banks.bank_splits(c)
            forbidden |= {text_hash(p.text) for p in split["probe"] + split["eval"]}
            gen_banks[c] = split["generation"]
    role_split = [c for c in capabilities if config.item_source == "full_splits" and decontamination.template_evaluated(c, config.use_banks)]
    return {"forbidden": forbidden, "banks": gen_banks, "bank_share": config.bank_share, "role_split": role_split}


class Distiller:
    """Budgeted teacher -> student distillation backend of one episode (see the module docstring).

    Args:
        capabilities: capability names (subset/order of ``CAPABILITIES``).
        config: models, teacher engine, decoding, training and measurement settings.
        run_dir: the episode's folder (ledger, checkpoints, final weights); created on the first write.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
        seed: seeds the prompt sampler, batch order, LoRA initialisation and torch sampling.
        reference_dir: folder caching the teacher's probe reference answers (default ``run_dir``); share
            it across episodes to generate them once.
        fault_hook: forwarded to :class:`~read_env.distill.training.Trainer` (OOM injection).
        models: models loaded by :func:`~read_env.distill.models.load_models` for an earlier episode
            (reused; the student is copied); ``None`` loads them.
        budget_tokens: the episode's budget (tokens), which ``config.lr_schedule="warmup_cosine"`` runs over.
    """

    _last_probe: ProbeResult | None = None  # the student's latest probe result; None after a rollback

    def __init__(self, capabilities: Sequence[str] = CAPABILITIES, config: DistillerConfig = DistillerConfig(),
                 run_dir: str | Path = "read_env_run", *, device: str = "auto", seed: int = 0,
                 reference_dir: str | Path | None = None, fault_hook: Callable[[int], None] | None = None,
                 models: LoadedModels | None = None, budget_tokens: int | None = None):
        if config.lr_schedule != "constant" and (budget_tokens is None or budget_tokens < 1):
            raise ValueError(f"lr_schedule={config.lr_schedule!r} runs over the episode's budget: pass budget_tokens >= 1, got {budget_tokens!r}")
        self.budget_tokens = budget_tokens
        self.capabilities = list(capabilities)
        self.K = len(self.capabilities)
        self.config = config
        self.run_dir = Path(run_dir)
        self.models = models or load_models(config, device)
        self.device = self.models.device
        self.generation_share, self.lora = config.generation_share, config.lora
        self.seed = seed
        torch.manual_seed(seed)
        self.np_rng = np.random.default_rng(seed)

        self.student_tok = self.models.student_tokenizer
        self.student = copy.deepcopy(self.models.student).to(self.device)
        teacher_for_kd = None
        if config.objective == "kd":
            teacher_for_kd, teacher_tok = self.models.teacher_with_tokenizer()
            check_same_vocab(teacher_for_kd, teacher_tok, self.student, self.student_tok)
        teacher_tok = self.models.teacher_tokenizer
        self.same_tokenizer = teacher_tok is not None and teacher_tok.get_vocab() == self.student_tok.get_vocab()
        if config.lora:
            self.student = apply_lora(self.student, r=config.lora_r, alpha=2 * config.lora_r)
        self.student.eval()
        self.trainer = Trainer(self.student, pad_id=self.student_tok.pad_token_id, lr=config.lr, objective=config.objective,
                               teacher=teacher_for_kd, kd_alpha=config.kd_alpha,
                               batch_size=config.batch_size, micro_batch=config.micro_batch, packed=config.packed,
                               tokens_per_step=config.tokens_per_step, micro_tokens=config.micro_tokens, bf16=config.bf16, fault_hook=fault_hook)
        self.sampling = SamplingConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
                                       batch_size=config.gen_batch_size)

        self.evaluator = Evaluator(self.capabilities, config.eval_items, config.use_banks, config.eval_max_new_tokens,
                                   item_source=config.item_source, clip_items=config.clip_items)
        self.probes = ProbeSuite(self.capabilities, config.probe_items, config.use_banks, config.probe_score,
                                 self.evaluator.hashes(), config.eval_max_new_tokens, config.item_source, config.clip_items)
        self.sampler = (PromptStreams if config.prompt_streams else PromptSampler)(
            self.capabilities, seed=seed, **sampler_options(self.capabilities, config, self.probes, self.evaluator))
        source = self.models.reference_source(config.engine_references)
        ref_file = Path(reference_dir or self.run_dir) / f"probe_references_{text_hash(source)[:12]}.json"
        self.probes.build_references(lambda: self.models.reference_engine(config.engine_references), config.probe_max_new_tokens,
                                     config.gen_batch_size, ref_file)
        self.ledger = TokenLedger(self.run_dir / "ledger.jsonl")
        self.engine = self.models.engine if config.teacher_pool is None else pool_engine(config, self.models)
        self._prompt_len_cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ helpers
    def _student_prompt_ids(self, p: Prompt) -> list[int]:
        ids = self._prompt_len_cache.get(p.text)
        if ids is None:
            ids = self.student_tok(chat_text(self.student_tok, p.text), add_special_tokens=False)["input_ids"]
            if len(self._prompt_len_cache) < 50_000:
                self._prompt_len_cache[p.text] = ids
        return ids

    def _answer_ids(self, token_ids: list[int] | None, text: str, finished: bool) -> list[int]:
        if self.same_tokenizer and token_ids is not None:
            return list(token_ids)
        ids = self.student_tok(text, add_special_tokens=False)["input_ids"]
        return ids + ([self.student_tok.eos_token_id] if finished else [])

    # ------------------------------------------------------------------ API
    def probe(self) -> ProbeResult:
        """Capability profile of the current student on the fixed probe suite."""
        return self.probes.run(self.student, self.student_tok)

    def evaluate(self) -> EvalResult:
        """Per-capability held-out scores of the current student."""
        return self.evaluator.run(self.student, self.student_tok)

    def utility(self, requirement: Sequence[float] | np.ndarray) -> float:
        """Task utility in [0,1]: requirement-weighted mean of held-out capability scores."""
        return self.evaluate().utility(self._requirement(requirement))

    def _requirement(self, requirement: Sequence[float] | np.ndarray) -> np.ndarray:
        """``requirement`` as float [K], or a ValueError naming its shape."""
        r = np.asarray(requirement, dtype=float)
        if r.shape != (self.K,):
            raise ValueError(f"requirement must have shape ({self.K},), got {r.shape}")
        return r

    def distill(self, tokens: Sequence[int] | np.ndarray, progress: float, final: bool = False) -> StepReport:
        """Spend at most ``sum(tokens)`` (+ carried remainder) tokens on one distillation step.

        Args:
            tokens: int array [K] >= 0, the step's allotment per capability (tokens).
            progress: fraction of the whole budget already spent, in [0, 1] (curriculum).
            final: the episode's last step: spend the pooled remainder too (see the module docstring).
        """
        draft = self.draft(tokens, progress, final)
        return self.book(draft, self.trainer.train(draft.examples + draft.replay, self.np_rng, draft.lr_at))

    def draft(self, tokens: Sequence[int] | np.ndarray, progress: float, final: bool = False) -> StepDraft:
        """:meth:`distill` up to training: the teacher's answers within the budget rule (ledger untouched)."""
        started = time.perf_counter()
        allotted = np.asarray(tokens)
        if allotted.shape != (self.K,) or np.any(allotted < 0) or not np.all(np.equal(np.mod(allotted, 1), 0)):
            raise ValueError(f"tokens must be {self.K} non-negative integers, got {tokens!r}")
        allotted = allotted.astype(np.int64)
        carry_in = self.ledger.carry
        available = allotted + (largest_remainder_split(carry_in, allotted) if allotted.sum() > 0 else 0)
        generated = np.zeros(self.K, dtype=np.int64)
        trained = np.zeros(self.K, dtype=np.int64)
        examples: list[TrainExample] = []
        generation_seconds = 0.0
        requests = [(k, split_generation_training(int(available[k]), self.generation_share)[0], int(available[k])) for k in range(self.K)]
        answers, generation_seconds = self._answers_of_step(requests, progress, self.config.min_new_tokens)
        for k, (generated[k], candidates) in enumerate(answers):
            kept, trained[k] = fit_budget(candidates, int(available[k] - generated[k]))
            examples += kept
        left = int(available.sum() - generated.sum() - trained.sum())
        for k in np.argsort(-available, kind="stable") if final else []:  # most-allotted capability first
            generation_cap, _ = split_generation_training(left, self.generation_share)
            more, candidates, seconds = self._answers(k, generation_cap, left, progress, 1)
            kept, used = fit_budget(candidates, left - more)
            generated[k] += more
            trained[k] += used
            examples += kept
            left -= more + used
            generation_seconds += seconds
        if self.config.teacher_pool is not None:
            self.engine.flush()  # answers a fallback generated
        return StepDraft(allotted, carry_in, generated, trained, examples, self._replay(examples), self._lr_at(progress, int(allotted.sum())),
                         progress, started, generation_seconds)

    def book(self, draft: StepDraft, stats: TrainStats) -> StepReport:
        """:meth:`distill` after training on ``draft``'s examples (``stats``): check the trained tokens and append
        the step to the ledger."""
        trained = draft.trained
        if any(stats.tokens_per_capability.get(k, 0) != trained[k] for k in range(self.K)):
            raise LedgerError(f"trained tokens per capability {stats.tokens_per_capability} differ from the planned {trained.tolist()}")
        allotted, carry_in, generated, examples = draft.allotted, draft.carry_in, draft.generated, draft.examples
        spent = int(generated.sum() + trained.sum())
        carry_out = int(allotted.sum()) + carry_in - spent
        step = len(self.ledger)
        self.ledger.append(LedgerEntry(step=step, allotted=allotted.tolist(), carry_in=carry_in,
                                       generated=generated.tolist(), trained=trained.tolist(), carry_out=carry_out,
                                       extra={"loss": stats.loss, "examples": len(examples), "progress": draft.progress}))
        return StepReport(step=step, tokens_allotted=int(allotted.sum()), carry_in=carry_in, carry_out=carry_out,
                          tokens_generated=int(generated.sum()), tokens_trained=int(trained.sum()),
                          generated=generated, trained=trained, examples=len(examples), loss=stats.loss,
                          seconds=time.perf_counter() - draft.started, generation_seconds=draft.generation_seconds,
                          training_seconds=stats.seconds, micro_batch=stats.micro_batch,
                          oom_retries=stats.oom_retries)

    def _replay(self, examples: list[TrainExample]) -> list[TrainExample]:
        """Examples trained beside the teacher's (outside the budget: capability index -1); none here."""
        return []

    def _lr_at(self, progress: float, tokens: int) -> Callable[[float], float] | None:
        """The learning rate over a step of ``tokens`` at ``progress`` (see :meth:`Trainer.train`): ``config.lr_schedule``
        over the budget; ``None``: the configured constant ``lr``."""
        if self.config.lr_schedule == "constant":
            return None
        return budget_schedule(self.config.lr, progress, tokens / self.budget_tokens, self.config.warmup_share)

    def _answers_of_step(self, requests: list[tuple[int, int, int]], progress: float,
                         min_new_tokens: int) -> tuple[list[tuple[int, list[TrainExample]]], float]:
        """:meth:`_answers` of every ``(k, generation_cap, allowance)`` request: ([(tokens generated, examples)]
        in request order, seconds). With ``config.batch_capabilities`` one :func:`generate_budgeted_together` call
        answers them all, their prompts in the same engine calls; else one :meth:`_answers` call per request."""
        if not self.config.batch_capabilities:
            answers = [self._answers(k, cap, allowance, progress, min_new_tokens) for k, cap, allowance in requests]
            return [(generated, examples) for generated, examples, _ in answers], sum(seconds for *_, seconds in answers)
        asked = [(k, cap, allowance) for k, cap, allowance in requests if cap > 0]
        generations = generate_budgeted_together(
            self.engine, [(functools.partial(self.sampler.sample_one, self.capabilities[k], progress), cap, allowance)
                                 for k, cap, allowance in asked],
            lambda prompt: len(self._student_prompt_ids(prompt)), self.sampling, min_new_tokens)
        by_k = {k: (generation.generated, self._examples(k, generation)) for (k, _, _), generation in zip(asked, generations)}
        return [by_k.get(k, (0, [])) for k, _, _ in requests], generations[0].seconds if generations else 0.0

    def _examples(self, k: int, generation: GenerationResult) -> list[TrainExample]:
        """The training examples of capability ``k``'s completions (student prompt + answer ids; empty answers dropped)."""
        candidates = [TrainExample(self._student_prompt_ids(c.prompt) + self._answer_ids(c.token_ids, c.text, c.finished),
                                   len(self._student_prompt_ids(c.prompt)), k) for c in generation.completions]
        return [example for example in candidates if len(example) > example.n_prompt]

    def _answers(self, k: int, generation_cap: int, allowance: int, progress: float, min_new_tokens: int) -> tuple[int, list[TrainExample], float]:
        """The teacher's answers to prompts of capability ``k`` drawn at ``progress``, generating at most
        ``generation_cap`` tokens with prompt + answer within ``allowance``, each answer allowed at least
        ``min_new_tokens``: (tokens generated, examples, seconds)."""
        if generation_cap <= 0:
            return 0, [], 0.0
        try:
            generation = generate_budgeted(self.engine, lambda: self.sampler.sample_one(self.capabilities[k], progress),
                                           generation_cap, allowance, lambda prompt: len(self._student_prompt_ids(prompt)),
                                           self.sampling, min_new_tokens)
        except PoolMissError as miss:
            c = self.capabilities[k]
            drawn = " / ".join(f"{self.sampler.used[(c, b)]} {b}" for b in BUCKETS)
            covered = self.engine.pool.card["covered"].get(c, {})
            raise PoolMissError(miss.pool, miss.texts, f" of capability {c!r} (this episode has drawn {drawn} elements of its streams; "
                                                       f"the pool covers {covered or 'none'})") from None
        return generation.generated, self._examples(k, generation), generation.seconds

    def checkpoint_path(self, step: int) -> Path:
        """Folder of the checkpoint after ``step`` completed steps."""
        return checkpoint_path(self.run_dir, step)

    def begin(self, requirement: Sequence[float] | np.ndarray) -> StepOutcome:
        """The untrained student's profile and utility (:meth:`start_measurement`); write ``checkpoint-0``."""
        r = self._requirement(requirement)
        probe, evaluation = self.start_measurement()
        self._last_probe = probe
        self.save_checkpoint(self.checkpoint_path(0))
        return StepOutcome(None, probe, evaluation.utility(r), self.totals(), evaluation)

    def start_measurement(self) -> tuple[ProbeResult, EvalResult]:
        """Probe and evaluation results of the untrained student, measured once per loaded models and settings
        (``models.start``: every episode starts from the same pristine student, and both are deterministic)."""
        key = json.dumps([self.capabilities, self.config.run_identity()], sort_keys=True)
        if key not in self.models.start:
            self.models.start[key] = (self.probe(), self.evaluate())
        return self.models.start[key]

    def step(self, tokens: Sequence[int] | np.ndarray, progress: float,
             requirement: Sequence[float] | np.ndarray | None = None, final: bool = False, checkpoint: bool = True) -> StepOutcome:
        """One environment step: :meth:`distill` (``final``: the episode's last, which spends the pooled remainder),
        probe, utility (when ``requirement`` is given), checkpoint (unless ``checkpoint`` is False: then only an
        earlier checkpoint can be rolled back to). A step that trained nothing (an allotment too small for one
        answer) repeats the last probe result.

        On any error the ledger may hold the failed step: call :meth:`rollback` with the last completed step.
        A failed checkpoint write raises :class:`~read_env.distill.checkpoint.CheckpointError`. With
        ``config.checkpoint_async`` the checkpoint's weights and optimizer state are written in a background
        thread while probing and evaluating; the step returns once the checkpoint is complete.
        """
        report = self.distill(tokens, progress, final)
        finish = self._start_checkpoint(self.checkpoint_path(len(self.ledger))) if checkpoint and self.config.checkpoint_async else None
        try:
            probe = self.probe_after(report)
            evaluation = None if requirement is None else self.evaluate()
            utility = None if evaluation is None else evaluation.utility(self._requirement(requirement))
        except BaseException:
            if finish is not None:
                finish(None)
            raise
        if finish is not None:
            finish(self._write_state)
        elif checkpoint:
            self.save_checkpoint(self.checkpoint_path(len(self.ledger)))
        return StepOutcome(report, probe, utility, self.totals(), evaluation)

    def probe_after(self, report: StepReport, measure: Callable[[], ProbeResult] | None = None) -> ProbeResult:
        """The probe result after ``report``'s step, kept as the latest: ``measure()`` (default :meth:`probe`), or a
        copy of the latest (0 seconds) when the step trained nothing and the probes would repeat."""
        unchanged = report.examples == 0 and self._last_probe is not None
        # info never shares arrays
        probe = copy.deepcopy(replace(self._last_probe, seconds=0.0)) if unchanged else (measure or self.probe)()
        self._last_probe = probe
        return probe

    def rollback(self, step: int) -> None:
        """Return to the state after ``step`` completed steps (student, optimizer, random states, ledger)."""
        self.load_checkpoint(self.checkpoint_path(step))

    def totals(self) -> dict[str, int]:
        """Ledger totals in tokens: allotted, generated, trained, spent, carry."""
        return self.ledger.totals()

    def prune_checkpoints(self, keep: int) -> None:
        """Delete every checkpoint folder (and unfinished ``.tmp`` folder) but ``checkpoint-{keep}``."""
        prune_checkpoints(self.run_dir, keep)

    def finish(self) -> None:
        """End of a completed episode: keep what ``config.keep_after_episode`` asks for (see DistillerConfig)."""
        keep = self.config.keep_after_episode
        if keep == "checkpoint":
            return
        if keep == "weights":
            write_folder(self.run_dir / "final", lambda folder: (self.student.save_pretrained(folder), self.student_tok.save_pretrained(folder)))
        self.prune_checkpoints(keep=-1)

    # ------------------------------------------------------------------ checkpoints
    def _trainable_state(self) -> dict[str, torch.Tensor]:
        dtype = getattr(torch, self.config.checkpoint_dtype) if self.config.checkpoint_dtype else None
        return {n: p.detach().to("cpu", dtype or p.dtype, copy=True) for n, p in self.student.named_parameters() if p.requires_grad}

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write weights/adapter (safetensors), optimizer, RNG states, sampler state and ledger to ``path``
        (crash-safe: :func:`~read_env.distill.checkpoint.write_folder`; what is stored: the ``checkpoint_*``
        options of :class:`~read_env.distill.config.DistillerConfig`)."""
        return write_folder(path, lambda tmp: (self._write_tensors(tmp), self._write_state(tmp)))

    def _start_checkpoint(self, path: Path) -> Callable[[Callable[[Path], None] | None], Path | None]:
        """Write the weights and optimizer state of ``path``'s checkpoint in a background thread (the student and
        optimizer must not change until it is finished); ``finish(self._write_state)`` completes it."""
        return start_folder(path, self._write_tensors)

    def _stores_weights(self) -> bool:
        return self.lora or self.config.checkpoint_start_weights or len(self.ledger) > 0

    def _write_tensors(self, tmp: Path) -> None:
        """The checkpoint's large files: trainable weights (unless pristine, see ``checkpoint_start_weights``) and AdamW state."""
        from safetensors.torch import save_file

        if self._stores_weights():
            save_file(self._trainable_state(), str(tmp / "trainable.safetensors"))
        if self.config.checkpoint_optimizer:
            torch.save(self.trainer.optimizer.state_dict(), tmp / "optimizer.pt")

    def _write_state(self, tmp: Path) -> None:
        """The checkpoint's small files: random states, sampler state and ledger."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(rng, tmp / "torch_rng.pt")
        np_global = np.random.get_state()
        state = {"step": len(self.ledger), "capabilities": self.capabilities, "lora": self.lora,
                 "np_rng": self.np_rng.bit_generator.state,
                 "np_global": [np_global[0], np_global[1].tolist(), *np_global[2:]],
                 "python_random": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
                 "sampler": self.sampler.state_dict(), "micro_batch": self.trainer.micro_batch, "micro_tokens": self.trainer.micro_tokens,
                 "ledger": [asdict(e) for e in self.ledger.entries]}
        (tmp / "state.json").write_text(json.dumps(state))

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (same constructor arguments)."""
        from safetensors.torch import load_file

        path = Path(path)
        self._last_probe = None
        state = json.loads((path / "state.json").read_text())
        if state["capabilities"] != self.capabilities or state["lora"] != self.lora:
            raise ValueError("checkpoint was written by a Distiller with other capabilities or LoRA setting")
        pristine = not (path / "trainable.safetensors").is_file() and state["step"] == 0 and not self.lora
        weights = dict(self.models.student.named_parameters()) if pristine else load_file(str(path / "trainable.safetensors"))
        expected = {n for n, p in self.student.named_parameters() if p.requires_grad}
        if set(weights) != expected:
            raise ValueError("checkpoint weights do not match the student's trainable parameters")
        with torch.no_grad():
            params = dict(self.student.named_parameters())
            for n, w in weights.items():
                params[n].copy_(w.to(params[n].device, params[n].dtype))
        if (path / "optimizer.pt").is_file():
            self.trainer.optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
        else:  # stored without optimizer state (checkpoint_optimizer=False): AdamW starts afresh
            self.trainer.optimizer.state.clear()
            for group in self.trainer.optimizer.param_groups:
                group["lr"] = self.trainer.optimizer.defaults["lr"]
        rng = torch.load(path / "torch_rng.pt", weights_only=True)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.np_rng.bit_generator.state = state["np_rng"]
        g = state["np_global"]
        np.random.set_state((g[0], np.array(g[1], dtype=np.uint32), *g[2:]))
        p = state["python_random"]
        random.setstate((p[0], tuple(p[1]), p[2]))
        self.sampler.load_state_dict(state["sampler"])
        self.trainer.micro_batch = int(state["micro_batch"])
        self.trainer.micro_tokens = int(state.get("micro_tokens", self.config.micro_tokens))  # absent before packed training
        self.ledger.replace([LedgerEntry(**e) for e in state["ledger"]])
