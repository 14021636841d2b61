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

    teacher_dtype: str | None = None  # DistillerConfig.teacher_dtype

    def teacher(self) -> torch.nn.Module:
        """The in-process teacher (eval mode, frozen, in :func:`teacher_dtype`), loaded on first use."""
        if self._teacher is None:
            dtype = teacher_dtype(self.teacher_dtype, self.device)
            self._teacher = load_model(self.teacher_path, self.device, dtype).eval().requires_grad_(False)
        return self._teacher

    def teacher_with_tokenizer(self) -> tuple[torch.nn.Module, Any]:
        return self.teacher(), self.tokenizer_of_teacher()

    def tokenizer_of_teacher(self) -> Any:
        """The teacher's tokenizer, loaded on first use (a served teacher's too: it is a local folder or cached id)."""
        if self.teacher_tokenizer is None:
            self.teacher_tokenizer = load_tokenizer(self.teacher_path)
        return self.teacher_tokenizer

    def reference_engine(self, from_engine: bool) -> tuple[Any, Any]:
        """(engine, teacher tokenizer) that builds the probe references: the teacher engine itself when
        ``from_engine`` (a served teacher stays out of this process), else the in-process teacher (ReAD-v0)."""
        if from_engine or self.engine.name == "hf":
            return self.engine, self.tokenizer_of_teacher()
        from .engines.hf import HFEngine

        return HFEngine(*self.teacher_with_tokenizer()), self.teacher_tokenizer

    def reference_source(self, from_engine: bool) -> str:
        """What the probe references depend on, for their cache file's name: the teacher's path (ReAD-v0), then
        the serving engine (``from_engine``) or the in-process teacher's dtype option (when set)."""
        if from_engine and self.engine.name != "hf":
            return f"{self.teacher_path}|{self.engine.name}"
        return str(self.teacher_path) + (f"|{self.teacher_dtype}" if self.teacher_dtype is not None else "")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products natively: a CUDA GPU with bf16, or a CPU with AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and "AMX" in torch.backends.cpu.get_cpu_capability()


def teacher_dtype(option: str | None, device: torch.device) -> torch.dtype:
    """The in-process teacher's dtype for ``DistillerConfig.teacher_dtype`` ``option`` on ``device``."""
    if option is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if option == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return getattr(torch, option)


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


def load_models(config: DistillerConfig, device: str = "auto") -> LoadedModels:
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

        engine, teacher_tokenizer = VLLMEngine(teacher_path, **vllm_options(config)), load_tokenizer(teacher_path)
    else:
        engine, teacher_tokenizer = None, load_tokenizer(teacher_path)
    models = LoadedModels(target, teacher_path, load_model(student_path, "cpu", torch.float32),
                          load_tokenizer(student_path), engine, teacher_tokenizer, teacher_dtype=config.teacher_dtype)
    if engine is None:
        from .engines.hf import HFEngine

        models.engine = HFEngine(*models.teacher_with_tokenizer())
    return models


VLLM_FIELDS = ("tensor_parallel_size", "gpu_memory_utilization", "max_num_seqs", "max_model_len")
"""The :class:`DistillerConfig` fields passed to :class:`~read_env.distill.engines.vllm_engine.VLLMEngine`."""
MODEL_FIELDS = ("teacher", "student", "cache", "teacher_engine", "teacher_url", "teacher_model", "teacher_concurrency",
                "teacher_retries", "teacher_timeout_s", "teacher_dtype", *VLLM_FIELDS)
"""The :class:`DistillerConfig` fields :func:`load_models` reads: equal values give equal models."""
_last: tuple[str, LoadedModels] | None = None


def vllm_options(config: DistillerConfig) -> dict[str, Any]:
    """``config``'s vLLM engine options (:data:`VLLM_FIELDS`)."""
    return {name: getattr(config, name) for name in VLLM_FIELDS}


def shared_models(config: DistillerConfig, device: str = "auto") -> LoadedModels:
    """:func:`load_models`, reusing the set loaded last in this process when its model settings and device are
    equal, whatever the episode's seed; the process keeps one set (the student is never trained: episodes copy it)."""
    global _last
    key = json.dumps({**{name: getattr(config, name) for name in MODEL_FIELDS}, "device": device}, sort_keys=True)
    if _last is None or _last[0] != key:
        _last = None  # free the previous set before loading the next
        _last = (key, load_models(config, device))
    return _last[1]
