"""Batched students (read_env.mini.batched): K lockstep episodes give their single episodes' numbers; bad input is named."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import read_env  # noqa: F401
from read_env.capabilities import PAPER_CAPABILITIES
from read_env.mini.batched import Member, run_batched
from read_env.tasks import resolve_requirement
from tests.test_mini import MINI_IDS, TINY, cache  # noqa: F401 - the module's tiny student cache

LOSS_RTOL = 1e-5
"""Training loss, relative: the batched products sum in another order (largest measured relative difference 3.8e-7 over the
tests' episodes; two members' losses differ by far more, which the test checks)."""
SCORE_ATOL = 0.01
"""Profiles, utilities, rewards: argmax scores (0 difference measured); a flipped argmax of one answer position
on another CPU moves a score by about 1 / (12 items x 20 positions) = 4e-3; a few may."""


def members() -> list[Member]:
    rng = np.random.default_rng(7)
    focused = np.full((4, 8), -1.0, dtype=np.float32)
    focused[:, 0] = 1.0  # nearly all tokens on math: other capabilities get a few or none
    return [Member("math", 0, rng.uniform(-1, 1, (4, 8)).astype(np.float32)),
            Member("coding_assistant", 5, rng.uniform(-1, 1, (4, 8)).astype(np.float32)),
            Member("math_word_problems", 2, focused)]


def single(env_id, cache, tmp_path, member):
    env = gym.make(env_id, cache_dir=cache, run_dir=str(tmp_path / f"single-{member.seed}"), **TINY)
    infos, rewards = [env.reset(seed=member.seed, options={"task": member.task})[1]], []
    for action in member.schedule:
        _, reward, _, _, info = env.step(action)
        infos.append(info)
        rewards.append(reward)
    return infos, rewards


@pytest.mark.parametrize("env_id", [env_id for env_id in MINI_IDS if env_id != "ReAD-Mini-v2"])  # v2: below
def test_batched_members_give_their_single_episodes(env_id, cache, tmp_path):  # noqa: F811
    episodes = run_batched(members(), env_id, {"cache_dir": cache, **TINY})
    losses = []
    for member, episode in zip(members(), episodes):
        infos, rewards = single(env_id, cache, tmp_path, member)
        assert episode.infos[0] == infos[0]
        np.testing.assert_allclose(episode.rewards, rewards, rtol=0, atol=SCORE_ATOL)
        for batched, alone in zip(episode.infos[1:], infos[1:]):
            assert batched.keys() == alone.keys()
            for key in ("tokens_allotted", "tokens_spent", "tokens_generated", "tokens_trained", "tokens_spent_total", "tokens_carried",
                        "tokens_used", "tokens_used_total", "step", "task", "micro_batch", "utility_measured"):
                assert batched[key] == alone[key], key
            np.testing.assert_array_equal(batched["allocation"], alone["allocation"])
            np.testing.assert_allclose(batched["loss"], alone["loss"], rtol=LOSS_RTOL)
            for key in ("delta_profile", "probe_stderr", "utility", "gain", "spillover", "cost"):
                np.testing.assert_allclose(batched[key], alone[key], rtol=0, atol=SCORE_ATOL, err_msg=key)
        profiles = np.cumsum([np.zeros(8)] + [info["delta_profile"] for info in infos[1:]], axis=0)
        np.testing.assert_allclose(np.array(episode.profiles) - episode.profiles[0], profiles, rtol=0, atol=SCORE_ATOL)
        _, requirement = resolve_requirement(member.task, None, PAPER_CAPABILITIES)
        assert episode.infos[-1]["utility"] == pytest.approx((requirement * episode.final_scores).sum() / requirement.sum())
        losses.append([info["loss"] for info in infos[1:]])
    spread = np.abs(np.array(losses)[:, None] - np.array(losses)[None]).max(axis=(0, 1))  # [T]: between members
    assert (spread > 100 * LOSS_RTOL * np.abs(losses).max()).all()  # the tolerance tells members apart


@pytest.mark.parametrize(("members_", "match"), [
    ([], "members is empty"),
    ([Member("math", 0, np.zeros((3, 8)))], r"member 0: schedule must be numbers of shape \(4, 8\)"),
    ([Member("math", 0, np.zeros((4, 8))), Member("math", 1, np.full((4, 8), np.nan))], "member 1: logit actions must be finite"),
    ([Member("math", 0, np.full((4, 8), 2.0))], r"member 0: logit actions must be in \[-1, 1\]"),
    ([Member("math", "0", np.zeros((4, 8)))], "member 0: seed must be an integer"),
])
def test_bad_members_are_named(members_, match, cache, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match=match):
        run_batched(members_, "ReAD-Mini-v1", {"cache_dir": cache, **TINY})


def test_v2_final_evaluation_is_refused_by_name(cache):  # noqa: F811
    with pytest.raises(ValueError, match="final_items"):
        run_batched(members(), "ReAD-Mini-v2", {"cache_dir": cache, **TINY})
