"""The surrogate examples run and print what they promise."""

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

