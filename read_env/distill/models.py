"""The models of a distillation run: names checked without a hub, loaded once, reused across episodes.

:func:`check_model_name` runs at ``gym.make``: a model is a local folder or a Hugging Face id already in the
local cache (no hub is ever contacted). :func:`load_models` loads the student (kept pristine on the CPU;
each episode trains a copy), the teacher engine and, only when needed, the in-process teacher (for the
``"hf"`` engine, logit KD, and the one-time probe references). :func:`shared_models` keeps the last loaded
set in the process, so environments made one after another with the same model settings (an episode and its
bandit's profiling runs, the agents of a comparison) load the models and measure the untrained student once
(``LoadedModels.start``, filled by :meth:`~read_env.distill.distiller.Distiller.start_measurement`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .assets import TEACHER_DIRNAME, cache_dir, find_smollm2_gguf, load_model, load_tokenizer, resolve_model_path, smollm2_available
from .config import DistillerConfig


def check_model_name(name: str | None, role: str, cache: str | None = None) -> None:
    """Raise at once when ``name`` (the ``role`` argument) cannot be loaded offline; ``None`` = embedded."""
    if name is None:
        if not smollm2_available() and not (cache_dir(cache) / TEACHER_DIRNAME / "model.safetensors").is_file():
            find_smollm2_gguf()  # raises MissingAssetError with the install command
        return
    path = Path(name).expanduser()
    if path.is_dir():
        return
    if name.startswith((".", "/", "~")):
        raise FileNotFoundError(f"{role} folder {name} does not exist")
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise ValueError(f"{role}={name!r} is neither a local folder nor a model in the local Hugging Face cache "
                         f"(no hub is contacted; download it first, e.g. `hf download {name}`)")


@dataclass
class LoadedModels:
    """What one environment loads once: the pristine student (CPU), tokenizers and the teacher engine."""

    device: torch.device
    teacher_path: str
    student: torch.nn.Module
    student_tokenizer: Any
    engine: Any  # a read_env.distill.engines.TeacherEngine
    teacher_tokenizer: Any | None  # None when the engine is a remote server
    _teacher: torch.nn.Module | None = field(default=None, repr=False)
    start: dict[str, Any] = field(default_factory=dict, repr=False)  # the untrained student's measurements, by settings
    opened: dict[str, Any] = field(default_factory=dict, repr=False)  # teacher pools opened for these models, by settings

    def teacher(self) -> torch.nn.Module:
        """The in-process teacher (eval mode, frozen), loaded on first use."""
        if self._teacher is None:
            dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
            self._teacher = load_model(self.teacher_path, self.device, dtype).eval().requires_grad_(False)
        return self._teacher

    def teacher_with_tokenizer(self) -> tuple[torch.nn.Module, Any]:
        if self.teacher_tokenizer is None:
            self.teacher_tokenizer = load_tokenizer(self.teacher_path)
        return self.teacher(), self.teacher_tokenizer


def torch_device(device: str) -> torch.device:
    """``"auto"`` = CUDA when available, else CPU; any other torch device string as is (``ValueError`` naming
    ``device`` when torch does not know it or this machine lacks it)."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a torch device name such as 'cpu' or 'cuda:0', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device={device!r} is not a torch device ({error}); use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error
    if target.type == "cuda" and (target.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device={device!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s) here; use 'auto' or 'cpu'")
    if target.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}: MPS is not available here; use 'auto' or 'cpu'")
    return target


def load_models(config: DistillerConfig, device: str = "auto", seed: int = 0) -> LoadedModels:
    """Load the student and start the teacher engine of ``config`` (``TeacherEngineError`` if it is unusable)."""
    target = torch_device(device)
    student_path = resolve_model_path(config.student, "student", config.cache)
    teacher_path = resolve_model_path(config.teacher, "teacher", config.cache)
    if config.teacher_engine == "openai":
        from .engines.openai_server import OpenAIEngine

        engine, teacher_tokenizer = OpenAIEngine(config.teacher_url, config.teacher_model or teacher_path, config.teacher_concurrency,
                                                 config.teacher_retries, config.teacher_timeout_s), None
    elif config.teacher_engine == "vllm":
        from .engines.vllm_engine import VLLMEngine

        engine, teacher_tokenizer = VLLMEngine(teacher_path, seed), load_tokenizer(teacher_path)
    else:
        engine, teacher_tokenizer = None, load_tokenizer(teacher_path)
    models = LoadedModels(target, teacher_path, load_model(student_path, "cpu", torch.float32),
                          load_tokenizer(student_path), engine, teacher_tokenizer)
    if engine is None:
        from .engines.hf import HFEngine

        models.engine = HFEngine(*models.teacher_with_tokenizer())
    return models


MODEL_FIELDS = ("teacher", "student", "cache", "teacher_engine", "teacher_url", "teacher_model", "teacher_concurrency",
                "teacher_retries", "teacher_timeout_s")
"""The :class:`DistillerConfig` fields :func:`load_models` reads: equal values give equal models."""
_last: tuple[str, LoadedModels] | None = None


def shared_models(config: DistillerConfig, device: str = "auto", seed: int = 0) -> LoadedModels:
    """:func:`load_models`, reusing the set loaded last in this process when its model settings, device (and
    for ``"vllm"`` seed) are equal; the process keeps one set (the student is never trained: episodes copy it)."""
    global _last
    key = json.dumps({**{name: getattr(config, name) for name in MODEL_FIELDS}, "device": device,
                      "seed": seed if config.teacher_engine == "vllm" else None}, sort_keys=True)
    if _last is None or _last[0] != key:
        _last = None  # free the previous set before loading the next
        _last = (key, load_models(config, device, seed))
    return _last[1]
