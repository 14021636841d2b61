"""Shared tiny models for the distillation-backend tests (built once per session, CPU only)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: tiny models gain nothing from more, and on a shared 2-core machine
    two OpenMP threads next to another busy process slow forward passes down ~20x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{"teacher": 2-layer, "student": 1-layer (same tokenizer), "other": different vocabulary}."""
    from read_env.distill.assets import build_tiny_llama

    root = tmp_path_factory.mktemp("tiny")
    teacher = build_tiny_llama(root / "teacher", num_layers=2, seed=0)
    student = build_tiny_llama(root / "student", num_layers=1, seed=1, tokenizer=teacher)
    other = build_tiny_llama(root / "other", num_layers=1, seed=2, vocab_size=320)
    return {"teacher": str(teacher), "student": str(student), "other": str(other)}


@pytest.fixture()
def make_distiller(tiny_models, tmp_path):
    """Factory for small, fast Distillers on the tiny models (templates only unless asked)."""
    from read_env.distill.distiller import Distiller

    def make(caps=("math", "code", "steerability"), run_dir=None, **kw):
        args = dict(device="cpu", lr=1e-3, max_new_tokens=12, probe_items=3, probe_max_new_tokens=6,
                    eval_items=2, eval_max_new_tokens=8, use_banks=False, batch_size=4, micro_batch=4,
                    gen_batch_size=8)
        args.update(kw)
        return Distiller(list(caps), tiny_models["teacher"], tiny_models["student"],
                         run_dir or tmp_path / "run", **args)

    return make
