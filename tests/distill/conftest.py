"""Shared tiny models for the distillation-backend tests (built once per session, CPU only)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every backend test runs with one torch thread (see ``one_torch_thread``)."""


@pytest.fixture()
def make_distiller(tiny_models, tmp_path):
    """Factory for small, fast Distillers on the tiny models (templates only unless asked)."""
    from read_env.distill.config import DistillerConfig
    from read_env.distill.distiller import Distiller

    def make(caps=("math", "code", "steerability"), run_dir=None, fault_hook=None, budget_tokens=None, **kw):
        options = dict(lr=1e-3, max_new_tokens=12, probe_items=3, probe_max_new_tokens=6, eval_items=2, eval_max_new_tokens=8,
                       use_banks=False, batch_size=4, micro_batch=4, gen_batch_size=8)
        config = DistillerConfig(teacher=tiny_models["teacher"], student=tiny_models["student"], **{**options, **kw})
        return Distiller(list(caps), config, run_dir or tmp_path / "run", device="cpu", fault_hook=fault_hook, budget_tokens=budget_tokens)

    return make
