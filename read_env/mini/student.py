"""The student of ReAD-Mini: a small Llama-style causal transformer over the mini vocabulary, pre-trained and cached.

Pre-training (:func:`pretrain`: prompt tokens masked, one pass, AdamW) draws from one of two corpora:

* ``skills="v0"`` (ReAD-Mini-v0): ``pretrain_tokens`` tokens of exact answers to training-split items of
  :data:`~read_env.mini.families.FAMILIES`, every family equally often, difficulties 1-3 equally often, at a
  constant learning rate. The default (0.43M parameters, 2M tokens) builds in about two minutes on one core.
* ``skills="v1"`` (ReAD-Mini-v1): a broad corpus (:func:`corpus_example`) in which a share
  ``1 - background_share`` are items of :data:`~read_env.mini.skills.SKILLS` (family and level uniform) and the
  rest background documents (:func:`~read_env.mini.skills.background_document`, every token trained); with
  ``pretrain_schedule="warmup_cosine"`` the learning rate warms up over the first 10% and decays to 10% of
  ``pretrain_lr`` (:func:`~read_env.distill.training.warmup_cosine`), as pre-training runs do.
* ``skills="v2"`` (ReAD-Mini-v2): the v1 corpus over :data:`~read_env.mini.skills_v2.SKILLS_V2` (the same
  background text).

The checkpoint is built on first use and cached under ``cache_dir`` (default ``$READ_ENV_MINI_CACHE`` or
``~/.cache/read_env/mini``) in a folder named by a hash of the configuration and the skills' version; the
build is seeded, so the same configuration gives the same weights on the same machine and thread count.
Tests use a few thousand tokens and build in seconds.

Scores (:func:`answer_scores`) are computed in one teacher-forced forward pass. ``"exact"``: exact match under
greedy decoding, which reproduces ``answer + EOS`` exactly iff at every answer position the argmax of the
logits given the correct prefix is the next correct token. ``"token"``: partial credit, the share of answer
positions (EOS included) at which that argmax is right; it equals 1 exactly when the exact match does, and
rises by steps of ``1 / (answer length + 1)`` as an answer comes closer, so a skill's progress on a long
answer shows before the whole answer is right.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from read_env.distill.training import LR_SCHEDULES, TrainExample, Trainer, warmup_cosine
from read_env.mini.families import DIFFICULTIES, EOS, FAMILIES, FAMILIES_VERSION, PAD, SEP, VOCAB_SIZE, Family, encode
from read_env.mini.skills import LEVELS, SKILLS, SKILLS_VERSION, background_document
from read_env.mini.skills_v2 import SKILLS_V2, SKILLS_V2_VERSION

CACHE_ENV = "READ_ENV_MINI_CACHE"
PRETRAIN_CHUNK_TOKENS = 100_000
SKILL_SETS: dict[str, tuple[dict[str, Family], tuple[int, ...]]] = {"v0": (FAMILIES, DIFFICULTIES), "v1": (SKILLS, LEVELS), "v2": (SKILLS_V2, LEVELS)}
"""Skill set name -> (families by capability, their difficulty levels)."""
STUDENT_PRESETS: dict[str, dict[str, Any]] = {
    "v0": {},
    "v1": {"skills": "v1", "background_share": 0.9, "pretrain_tokens": 3_000_000, "pretrain_schedule": "warmup_cosine"},
    "v2": {"skills": "v2", "background_share": 0.9, "pretrain_tokens": 3_000_000, "pretrain_schedule": "warmup_cosine"},
}
"""Each skill set's student defaults (``StudentConfig`` fields), under the options an environment is given."""
METRICS = ("exact", "token")
_LATER_FIELDS = {"skills": "v0", "background_share": 0.0, "pretrain_schedule": "constant"}
"""Fields added after ReAD-Mini-v0, with the values v0 uses: they enter the cache key only when set otherwise,
so v0's cached students keep their folders."""


@dataclass(frozen=True)
class StudentConfig:
    """Architecture and pre-training of the student (all JSON-able; unknown keys are an error)."""

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 384
    max_length: int = 128  # tokens of prompt + answer + separators
    pretrain_tokens: int = 2_000_000
    pretrain_lr: float = 1e-3
    pretrain_batch_size: int = 32
    seed: int = 0
    skills: str = "v0"  # the family set of the corpus: "v0", "v1" or "v2" (SKILL_SETS)
    background_share: float = 0.0  # share of pre-training examples that are background documents, in [0, 1)
    pretrain_schedule: str = "constant"  # or "warmup_cosine"

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> StudentConfig:
        """The default configuration with ``options`` applied; raises ``ValueError`` on unknown or bad keys."""
        fields = cls.__dataclass_fields__
        unknown = sorted(set(options or {}) - set(fields))
        if unknown:
            raise ValueError(f"unknown student options {unknown}; known: {sorted(fields)}")
        config = cls(**(options or {}))
        sizes = {name: getattr(config, name) for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_length", "pretrain_batch_size")}
        if any(isinstance(value, bool) or not isinstance(value, int) or value < 1 for value in sizes.values()):
            raise ValueError(f"student sizes must be positive integers, got {sizes}")
        if config.hidden_size % config.num_heads or (config.hidden_size // config.num_heads) % 2:
            raise ValueError(f"hidden_size {config.hidden_size} must split into num_heads {config.num_heads} heads of even size")
        if not (isinstance(config.pretrain_tokens, int) and config.pretrain_tokens >= 0 and config.pretrain_lr > 0):
            raise ValueError(f"pretrain_tokens must be a non-negative integer and pretrain_lr positive, got {config.pretrain_tokens!r}, {config.pretrain_lr!r}")
        if config.skills not in SKILL_SETS or config.pretrain_schedule not in LR_SCHEDULES:
            raise ValueError(f"skills must be one of {list(SKILL_SETS)} and pretrain_schedule one of {list(LR_SCHEDULES)}, got {config.skills!r}, {config.pretrain_schedule!r}")
        if not 0.0 <= config.background_share < 1.0 or (config.background_share and config.skills == "v0"):
            raise ValueError(f"background_share must be in [0, 1), and 0 with skills 'v0' (no background text), got {config.background_share!r}")
        return config

    def recorded(self) -> dict[str, Any]:
        """The configuration as histories record it: fields added after v0 only where they differ from v0."""
        return {name: value for name, value in asdict(self).items() if _LATER_FIELDS.get(name, object()) != value}

    def key(self) -> str:
        fields = self.recorded()
        versions = {"families_version": FAMILIES_VERSION} | ({"skills_version": SKILLS_VERSION} if self.skills != "v0" else {})
        versions |= {"skills_v2_version": SKILLS_V2_VERSION} if self.skills == "v2" else {}
        text = json.dumps({**fields, **versions}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of cached students: ``cache_dir``, else ``$READ_ENV_MINI_CACHE``, else ``~/.cache/read_env/mini``."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "read_env" / "mini").expanduser()


def build_model(config: StudentConfig) -> torch.nn.Module:
    """A randomly initialised ``LlamaForCausalLM`` of ``config`` (seeded by ``config.seed``; global RNG untouched)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_length,
        tie_word_embeddings=True,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=SEP,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = LlamaForCausalLM(llama)
    return model.eval()


def example(prompt: str, answer: str, capability: int = 0) -> TrainExample:
    """``prompt SEP answer EOS`` as a training example with the prompt and separator masked."""
    prompt_ids = encode(prompt) + [SEP]
    return TrainExample(prompt_ids + encode(answer) + [EOS], len(prompt_ids), capability)


def corpus_example(rng: np.random.Generator, config: StudentConfig) -> TrainExample:
    """One pre-training example: a background document (all tokens trained, capability -1) with probability
    ``background_share``, else an exact-answer item of a uniform family (its index) at a uniform level."""
    families, levels = SKILL_SETS[config.skills]
    if config.background_share and rng.random() < config.background_share:
        return TrainExample(encode(background_document(rng)) + [EOS], 0, -1)
    index = int(rng.integers(len(families)))
    return example(*list(families.values())[index].training_item(rng, int(rng.choice(levels))), index)


def pretrain(model: torch.nn.Module, config: StudentConfig) -> None:
    """Train ``model`` one pass over ``config.pretrain_tokens`` tokens of its corpus (:func:`corpus_example`)."""
    rng = np.random.default_rng(config.seed)
    trainer = Trainer(model, pad_id=PAD, lr=config.pretrain_lr, batch_size=config.pretrain_batch_size, micro_batch=config.pretrain_batch_size)
    done = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        while done < config.pretrain_tokens:
            chunk: list[TrainExample] = []
            size = 0
            while size < min(PRETRAIN_CHUNK_TOKENS, config.pretrain_tokens - done):
                item = corpus_example(rng, config)
                chunk.append(item)
                size += len(item)
            lr_at = None
            if config.pretrain_schedule == "warmup_cosine":
                lr_at = functools.partial(_pretrain_lr, config=config, start=done, size=size)
            trainer.train(chunk, rng, lr_at)
            done += size


def _pretrain_lr(share: float, config: StudentConfig, start: int, size: int) -> float:
    return config.pretrain_lr * warmup_cosine((start + share * size) / config.pretrain_tokens)


@functools.lru_cache(maxsize=4)
def _weights(folder: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def load_student(config: StudentConfig, cache_dir: str | os.PathLike[str] | None = None) -> torch.nn.Module:
    """A fresh copy of the pre-trained student of ``config``, built and cached on first use."""
    from safetensors.torch import save_file

    folder = cache_root(cache_dir) / f"student-{config.key()}"
    if not (folder / "model.safetensors").is_file():
        model = build_model(config)
        pretrain(model, config)
        tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({name: tensor.detach().contiguous() for name, tensor in model.state_dict().items() if name != "lm_head.weight"}, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps({**asdict(config), "key": config.key()}, indent=1))
        try:
            tmp.rename(folder)
        except OSError:  # another process cached it first: use theirs
            shutil.rmtree(tmp)
    model = build_model(config)
    model.load_state_dict(_weights(str(folder)), strict=False)
    model.tie_weights()
    return model.eval()


def answer_scores(model: torch.nn.Module, items: Sequence[TrainExample], metric: str = "exact", batch_size: int = 256) -> np.ndarray:
    """Float [N] in [0, 1]: each item's score under ``metric`` (``"exact"`` or ``"token"``, module docstring).

    ``model`` maps ``input_ids`` [n, L] to ``logits`` [..., n, L, V]: a stack of M students
    (:class:`read_env.mini.batched.StackedStudents`) gives scores [M, N]."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    scores = None
    order = sorted(range(len(items)), key=lambda index: len(items[index]))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = [items[index] for index in order[start : start + batch_size]]
            length = max(len(item) for item in chunk)
            ids = torch.full((len(chunk), length), PAD, dtype=torch.long)
            labels = torch.full((len(chunk), length), -100, dtype=torch.long)
            for row, item in enumerate(chunk):
                ids[row, : len(item)] = torch.tensor(item.input_ids)
                labels[row, : len(item)] = torch.tensor(item.labels())
            predicted = model(input_ids=ids, attention_mask=(ids != PAD).long()).logits[..., :-1, :].argmax(-1).cpu()
            target = labels[:, 1:]
            counted = target != -100
            hits = ((predicted == target) & counted).sum(dim=-1)
            right = hits == counted.sum(dim=-1) if metric == "exact" else hits / counted.sum(dim=-1)
            scores = np.zeros((*right.shape[:-1], len(items))) if scores is None else scores
            scores[..., order[start : start + len(chunk)]] = right.double().numpy()
    return np.zeros(len(items)) if scores is None else scores


def exact_match(model: torch.nn.Module, items: Sequence[TrainExample], batch_size: int = 256) -> np.ndarray:
    """Bool [N]: does greedy decoding after each item's prompt produce exactly its answer and EOS?"""
    return answer_scores(model, items, "exact", batch_size).astype(bool)
