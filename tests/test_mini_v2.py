"""ReAD-Mini-v2's own behaviour: skills with real prerequisites, per-capability item streams (common random
numbers), three disjoint held-out sets with the final evaluation after the last step, bad input, and v1 left
as published."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from read_env.distill.env import read_history
from read_env.mini.backend import ItemSampler
from read_env.mini.families import CIPHER, FORMAT_RULES, encode
from read_env.mini.skills import LEVELS
from read_env.mini.skills_v2 import SKILLS_V2, SPLIT_PERCENT_V2
from read_env.mini.student import StudentConfig
from read_env.mini.teacher import Teacher
from read_env.tasks import TASKS
from tests.test_mini import TINY_STUDENT, make, play

TINY_V2 = {"final_items": 40}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("mini-v2-cache"))


def test_skills_solve_the_docstring_examples():
    assert SKILLS_V2["reasoning"].solve("ask:qe=37,ub=80,cd=15?ub-qe") == "43"
    assert SKILLS_V2["reasoning"].solve("ask:qe=37,ub=80,cd=15?cd+ub") == "95"
    assert SKILLS_V2["steerability"].solve("fmt:rev,tr|abc") == "".join(CIPHER[c] for c in "cba")
    assert SKILLS_V2["steerability"].solve("fmt:tr,wrap|ab") == f"[{CIPHER['a']}{CIPHER['b']}]"


@pytest.mark.parametrize("level", LEVELS)
def test_reasoning_and_steerability_items_contain_their_prerequisites(level):
    """Every reasoning item is a retrieval from a ``key=value`` list then an addition or subtraction; every
    steerability item applies multilingual's cipher."""
    rng = np.random.default_rng(level)
    for _ in range(200):
        prompt, answer = SKILLS_V2["reasoning"].item(rng, level)
        body, query = prompt[4:].split("?")
        values = dict(pair.split("=") for pair in body.split(","))
        operation = "+" if "+" in query else "-"
        left, right = query.split(operation)
        assert len(values) == level + 2 and left != right and {left, right} <= set(values)
        assert int(answer) == (int(values[left]) + int(values[right]) if operation == "+" else int(values[left]) - int(values[right])) >= 0
        prompt, answer = SKILLS_V2["steerability"].item(rng, level)
        rules, text = prompt[4:].split("|")
        rules = rules.split(",")
        assert "tr" in rules and len(rules) == 2 and len(text) == level + 1 and set(rules) - {"tr"} <= set(FORMAT_RULES)
        assert encode(prompt + answer) and answer == SKILLS_V2["steerability"].solve(prompt)


def test_three_held_out_splits_are_disjoint_from_each_other_and_training():
    assert sorted(b for buckets in SPLIT_PERCENT_V2.values() for b in buckets) == list(range(100))
    for family in SKILLS_V2.values():
        sets = {split: {prompt for prompt, _ in family.heldout_items(split, 20, 3)} for split in ("probe", "validation", "eval")}
        rng = np.random.default_rng(0)
        training = {family.training_item(rng, 3)[0] for _ in range(1000)}
        assert all(len(items) == 20 for items in sets.values())
        assert not sets["probe"] & sets["validation"] and not sets["probe"] & sets["eval"] and not sets["validation"] & sets["eval"]
        assert not training & (sets["probe"] | sets["validation"] | sets["eval"])
    with pytest.raises(ValueError, match="held-out split"):
        SKILLS_V2["math"].heldout_items("train", 5, 1)


def test_each_capability_draws_the_same_items_whatever_the_others_draw():
    teacher = Teacher(list(SKILLS_V2.values()), np.zeros(8))
    config = StudentConfig.from_options({"skills": "v2"})

    def draws(order, streams):
        sampler = ItemSampler(teacher, LEVELS, seed=7, student=config, streams=streams)
        drawn = {k: [] for k in set(order)}
        for k in order:
            drawn[k].append(sampler.sample(k).input_ids)
        return drawn

    math_only, mixed = [2] * 20, [2, 1, 1, 2, 6, 2] * 5 + [2] * 10
    streams = draws(math_only, True), draws(mixed, True)
    assert streams[1][2][:20] == streams[0][2]  # math's items do not depend on what reasoning and steerability drew
    shared = draws(math_only, False), draws(mixed, False)
    assert shared[1][2][:20] != shared[0][2]  # v1's single stream: they do


def test_paired_episodes_train_on_the_same_items_of_each_capability(cache, tmp_path):
    """Under one seed, an allocation with fewer math tokens trains on a prefix of the math items of one with more."""
    env = make(cache, tmp_path / "runs", "ReAD-Mini-v2", task="math_word_problems", **TINY_V2)
    drawn = []
    for action in (np.eye(8, dtype=np.float32)[2], np.full(8, 1 / 8, dtype=np.float32)):
        env.reset(seed=3)
        sampler, items = env.unwrapped.distiller.sampler, []
        sample = sampler.sample
        sampler.sample = lambda k, sample=sample, items=items: items.append((k, tuple((item := sample(k)).input_ids))) or item
        env.step(action)
        drawn.append([ids for k, ids in items if k == 2])
    many, few = drawn
    assert len(few) >= 5 and len(many) > len(few) and many[: len(few)] == few


def test_final_evaluation_after_the_last_step_only(cache, tmp_path):
    env = make(cache, tmp_path / "runs", "ReAD-Mini-v2", task="multilingual_qa", **TINY_V2)
    records = play(env, seed=1)
    infos = [record[-1] for record in records]
    assert all("final_utility" not in info for info in infos[:-1])
    final = infos[-1]
    r = np.array([TASKS["multilingual_qa"].weights.get(name, 0.0) for name in env.unwrapped.capabilities])
    scores = np.asarray(final["final_scores"])
    assert np.isnan(scores[r == 0]).all() and np.isfinite(scores[r > 0]).all()
    assert final["final_utility"] == pytest.approx(float((r[r > 0] * scores[r > 0]).sum() / r.sum()))
    assert final["final_utility_stderr"] > 0 and np.isfinite(np.asarray(final["final_stderr"])[r > 0]).all()
    distiller = env.unwrapped.distiller
    assert [len(items) for items in distiller.final_set] == [TINY_V2["final_items"]] * int((r > 0).sum())
    assert read_history(env.unwrapped.episode_dir)[-1]["final_utility"] == pytest.approx(final["final_utility"])


def test_defaults_give_ten_times_v1s_evaluation_items_and_record_the_options(cache, tmp_path):
    default = gym.make("ReAD-Mini-v2").unwrapped
    v1 = gym.make("ReAD-Mini-v1").unwrapped
    assert default.training["final_items"] >= 10 * v1.distiller_config.eval_items and default.training["item_streams"]
    assert default.student_config.skills == "v2" and default.budget_tokens == v1.budget_tokens
    env = make(cache, tmp_path / "runs", "ReAD-Mini-v2", **TINY_V2)
    env.reset(seed=0)
    config = read_history(env.unwrapped.episode_dir)[0]["config"]
    assert config["skills"] == "v2" and config["item_streams"] is True and config["final_items"] == TINY_V2["final_items"]
    env_v1 = make(cache, tmp_path / "runs-v1", "ReAD-Mini-v1")
    env_v1.reset(seed=0)
    assert not {"item_streams", "final_items"} & set(read_history(env_v1.unwrapped.episode_dir)[0]["config"])


@pytest.mark.parametrize(
    "env_id,kwargs,match",
    [
        ("ReAD-Mini-v1", {"final_items": 100}, "validation split"),
        ("ReAD-Mini-v2", {"final_items": -1}, "final_items"),
        ("ReAD-Mini-v2", {"final_items": 1.5}, "final_items"),
        ("ReAD-Mini-v2", {"item_streams": "yes"}, "item_streams"),
    ],
)
def test_bad_v2_configuration_is_named(tmp_path, env_id, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make(env_id, run_dir=str(tmp_path), **kwargs)


def test_student_of_v2_has_its_own_cache_key():
    keys = {skills: StudentConfig.from_options({**TINY_STUDENT, "skills": skills, "background_share": 0.5}).key() for skills in ("v1", "v2")}
    assert keys["v1"] != keys["v2"]
