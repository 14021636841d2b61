"""The surrogate examples run and print what they promise."""

import re
import runpy
import warnings
from pathlib import Path

import pytest


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(autouse=True)
def no_warning():
    """The examples are a newcomer's default path: no warning may print."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_surrogate_episode_example(capsys):
    runpy.run_path(str(EXAMPLES / "surrogate_episode.py"), run_name="__main__")
    out = capsys.readouterr().out
    for rule in ("uniform", "w = r_tau", "lagging-first"):
        assert rule in out
    assert "step 20/20" in out and "points" in out


def test_record_and_replay_example(capsys):
    runpy.run_path(str(EXAMPLES / "record_and_replay.py"), run_name="__main__")
    assert "replay identical: True" in capsys.readouterr().out


def test_readme_jax_example_runs_with_tiny_settings(tmp_path, monkeypatch):
    """The README's JAX example, as written, with a tiny training run in place of 2M steps."""
    pytest.importorskip("jax", reason="the JAX example needs JAX: pip install 'read-env[jax]'")
    pytest.importorskip("gymnax", reason="the JAX example needs gymnax: pip install 'read-env[jax]'")
    readme = (EXAMPLES.parent / "README.md").read_text()
    code = re.search(r"## JAX.*?```python\n(.*?)```", readme, re.S).group(1)
    tiny = "total_timesteps=5120, num_envs=16, num_minibatches=4, hidden=(16,)"
    assert code.count("total_timesteps=2_000_000") == 1
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code.replace("total_timesteps=2_000_000", tiny), "README.md", "exec"), namespace)
    assert (tmp_path / "runs" / "ppo_jax" / "model.npz").is_file()
    assert namespace["report"]["steps"] == 5120 and namespace["obs"].shape == (33,)
