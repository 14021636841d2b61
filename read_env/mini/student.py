"""The student of ReAD-Mini: a small Llama-style causal transformer over the mini vocabulary, pre-trained and cached.

The pre-trained checkpoint has some skill in every family: it is trained (prompt tokens masked, one pass,
AdamW) on ``pretrain_tokens`` tokens of exact answers to training-split items, every family equally often,
difficulties 1-3 equally often. It is built on first use and cached under ``cache_dir`` (default
``$READ_ENV_MINI_CACHE`` or ``~/.cache/read_env/mini``) in a folder named by a hash of the configuration and
:data:`~read_env.mini.families.FAMILIES_VERSION`; the build is seeded, so the same configuration gives the same
weights on the same machine and thread count. The default (0.43M parameters, 2M pre-training
tokens) builds in about two minutes on one core; tests use a few thousand tokens and build in seconds.

Scoring is exact match under greedy decoding, computed in one teacher-forced forward pass: greedy decoding
reproduces ``answer + EOS`` exactly iff at every answer position the argmax of the logits given the correct
prefix is the next correct token.
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

from read_env.distill.training import TrainExample, Trainer
from read_env.mini.families import DIFFICULTIES, EOS, FAMILIES, FAMILIES_VERSION, PAD, SEP, VOCAB_SIZE, encode

CACHE_ENV = "READ_ENV_MINI_CACHE"
PRETRAIN_CHUNK_TOKENS = 100_000


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
        return config

    def key(self) -> str:
        text = json.dumps({**asdict(self), "families_version": FAMILIES_VERSION}, sort_keys=True)
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


def pretrain(model: torch.nn.Module, config: StudentConfig) -> None:
    """Train ``model`` one pass over ``config.pretrain_tokens`` tokens of exact answers, all families and difficulties."""
    rng = np.random.default_rng(config.seed)
    families = list(FAMILIES.values())
    trainer = Trainer(model, pad_id=PAD, lr=config.pretrain_lr, batch_size=config.pretrain_batch_size, micro_batch=config.pretrain_batch_size)
    done = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        while done < config.pretrain_tokens:
            chunk: list[TrainExample] = []
            size = 0
            while size < min(PRETRAIN_CHUNK_TOKENS, config.pretrain_tokens - done):
                index = int(rng.integers(len(families)))
                item = example(*families[index].training_item(rng, int(rng.choice(DIFFICULTIES))), index)
                chunk.append(item)
                size += len(item)
            trainer.train(chunk, rng)
            done += size


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
        (tmp / "config.json").write_text(json.dumps({**asdict(config), "families_version": FAMILIES_VERSION}, indent=1))
        try:
            tmp.rename(folder)
        except OSError:  # another process cached it first: use theirs
            shutil.rmtree(tmp)
    model = build_model(config)
    model.load_state_dict(_weights(str(folder)), strict=False)
    model.tie_weights()
    return model.eval()


def exact_match(model: torch.nn.Module, items: Sequence[TrainExample], batch_size: int = 256) -> np.ndarray:
    """Bool [N]: does greedy decoding after each item's prompt produce exactly its answer and EOS?"""
    correct = np.zeros(len(items), dtype=bool)
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
            predicted = model(input_ids=ids, attention_mask=(ids != PAD).long()).logits[:, :-1].argmax(-1)
            target = labels[:, 1:]
            right = ((predicted == target) | (target == -100)).all(dim=1).numpy()
            correct[order[start : start + len(chunk)]] = right
    return correct
