"""Lean checkpoints (DistillerConfig.checkpoint_*): smaller files, the same episode, exact rollback to the start."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from tests.test_real_env import make

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FULL_FILES = ["optimizer.pt", "state.json", "torch_rng.pt", "trainable.safetensors"]
LEAN = {"checkpoint_dtype": "bfloat16", "checkpoint_optimizer": False, "checkpoint_start_weights": False, "checkpoint_async": True}


def history_without_timings(episode_dir) -> list[dict]:
    lines = (episode_dir / "history.jsonl").read_text().splitlines()
    return [{key: value for key, value in json.loads(line).items() if key != "seconds"} for line in lines]


def test_lean_checkpoints_store_less_and_leave_the_episode_unchanged(tiny_models, tmp_path):
    episodes = {}
    for name, options in (("full", {}), ("background", {"checkpoint_async": True}), ("lean", LEAN)):
        env = make(tiny_models, tmp_path / name, distiller_config={**options, "keep_after_episode": "checkpoint"})
        env.reset(seed=0)
        if name != "full":  # checkpoint-0 of full fine-tuning: no weights with checkpoint_start_weights=False
            stored = sorted(path.name for path in (env.unwrapped.episode_dir / "checkpoint-0").iterdir())
            assert stored == (["state.json", "torch_rng.pt"] if name == "lean" else FULL_FILES)
        action = torch.linspace(-1, 1, 8).numpy()
        terminated = False
        while not terminated:
            *_, terminated, _, _ = env.step(action)
        episodes[name] = env.unwrapped.episode_dir
    for name in ("background", "lean"):  # a checkpoint is only read back on rollback: the episode is the same
        assert (episodes[name] / "ledger.jsonl").read_bytes() == (episodes["full"] / "ledger.jsonl").read_bytes()
        assert history_without_timings(episodes[name]) == history_without_timings(episodes["full"])
    full, lean = episodes["full"] / "checkpoint-3", episodes["lean"] / "checkpoint-3"
    assert sorted(path.name for path in lean.iterdir()) == ["state.json", "torch_rng.pt", "trainable.safetensors"]
    with safe_open(full / "trainable.safetensors", "pt") as f32, safe_open(lean / "trainable.safetensors", "pt") as b16:
        assert {f32.get_tensor(name).dtype for name in f32.keys()} == {torch.float32}
        assert {b16.get_tensor(name).dtype for name in b16.keys()} == {torch.bfloat16}
        assert all(torch.equal(f32.get_tensor(name).to(torch.bfloat16), b16.get_tensor(name)) for name in f32.keys())

    def files(name):
        return [(path.name, path.read_bytes()) for path in sorted((episodes[name] / "checkpoint-3").iterdir())]

    assert files("background") == files("full")  # written in the background, the same bytes


def test_rollback_to_a_weightless_start_restores_the_untrained_student_and_a_fresh_optimizer(tiny_models, tmp_path):
    env = make(tiny_models, tmp_path, distiller_config=LEAN)
    env.reset(seed=0)
    distiller = env.unwrapped.distiller
    distiller.step([200] * 8, progress=0.0, checkpoint=False)  # checkpoint-0 stays the only one
    pristine = {name: param.clone() for name, param in distiller.models.student.named_parameters()}
    assert any(not torch.equal(param, pristine[name]) for name, param in distiller.student.named_parameters())  # it trained
    assert distiller.trainer.optimizer.state
    distiller.rollback(0)
    assert all(torch.equal(param, pristine[name]) for name, param in distiller.student.named_parameters())
    assert not distiller.trainer.optimizer.state and distiller.totals()["allotted"] == 0
