"""ReAD-Mini-v1's own behaviour: composed skills and levels, broad corpus, partial credit, lr schedule, replay,
LoRA, bad input, and v0 left as published."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from read_env.capabilities import PAPER_CAPABILITIES
from read_env.distill.env import read_history
from read_env.distill.training import TrainExample, warmup_cosine
from read_env.mini.families import CIPHER, encode
from read_env.mini.skills import FACTS_V1, LEVELS, SKILLS, background_document
from read_env.mini.student import StudentConfig, answer_scores, corpus_example, exact_match, load_student
from tests.test_mini import TINY_STUDENT, make, play


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("mini-v1-cache"))


def test_skills_solve_the_docstring_examples():
    qe, ub = list(FACTS_V1)[:2]
    assert SKILLS["general_knowledge"].solve(f"fact:{qe},{ub}?") == f"{FACTS_V1[qe]},{FACTS_V1[ub]}"
    assert SKILLS["reasoning"].solve("var:b=a-4;a=25;c=7;?b") == "21"
    assert SKILLS["reasoning"].solve("var:c=b+3;a=25;b=a-4;?c") == "24"
    assert SKILLS["math"].solve("calc:374-45=") == "329" and SKILLS["math"].solve("calc:45-37=") == "8"
    assert SKILLS["code"].solve("run:x=13;y=21;y=x+4;x=y-2;?x") == "15"
    assert SKILLS["code"].solve("run:x=98;y=1;x=x+5;?x") == "3"  # mod 100
    assert SKILLS["tool_use"].solve("call:mv;to=qx1;fr=ab7") == "mv(ab7,qx1)"
    assert SKILLS["long_context"].solve("find:ab=37,cd=72?cd") == "72"
    assert SKILLS["steerability"].solve("fmt:dup|abcd") == "aabbccdd"
    assert SKILLS["steerability"].solve("fmt:dot,tr|ab") == f"{CIPHER['a']}.{CIPHER['b']}"  # the cipher keeps non-letters
    assert SKILLS["multilingual"].solve(f"tr<:{SKILLS['multilingual'].solve('tr>:abc')}") == "abc"


@pytest.mark.parametrize("level", LEVELS)
def test_levels_are_graded_and_splits_disjoint(level):
    for family in SKILLS.values():
        rng = np.random.default_rng(level)
        items = [family.item(rng, level) for _ in range(50)]
        assert all(answer == family.solve(prompt) and encode(prompt + answer) for prompt, answer in items)
        probe = {prompt for prompt, _ in family.heldout_items("probe", 20, level)}
        training = {family.training_item(rng, level)[0] for _ in range(500)}
        assert len(probe) == 20 and not probe & training
    lengths = [np.mean([len("".join(family.item(np.random.default_rng(0), level))) for family in SKILLS.values()]) for level in LEVELS]
    assert lengths == sorted(lengths)
    with pytest.raises(ValueError, match="difficulty"):
        SKILLS["math"].item(np.random.default_rng(0), 6)


def test_broad_corpus_is_mostly_background():
    config = StudentConfig.from_options({"skills": "v1", "background_share": 0.9})
    rng = np.random.default_rng(0)
    drawn = [corpus_example(rng, config) for _ in range(2000)]
    background = [item for item in drawn if item.capability == -1]
    assert abs(len(background) / len(drawn) - 0.9) < 0.03
    assert all(item.n_prompt == 0 for item in background)
    assert {item.capability for item in drawn} == set(range(-1, 8))
    document = background_document(np.random.default_rng(1))
    assert len(document) <= 100 and document.endswith(".") and encode(document)


def test_token_metric_gives_partial_credit_and_one_only_when_exact(cache):
    import torch

    student = load_student(StudentConfig.from_options({**TINY_STUDENT, "skills": "v1", "background_share": 0.9}), cache)
    prompt_ids = encode("calc:12+34=") + [1]
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        for _ in range(3):
            ids = torch.cat([ids, student(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
    greedy = ids[0].tolist()
    wrong_last = greedy[:-1] + [(greedy[-1] + 1) % 50 + 3]
    items = [TrainExample(greedy, len(prompt_ids)), TrainExample(wrong_last, len(prompt_ids))]
    np.testing.assert_allclose(answer_scores(student, items, "token"), [1.0, 2 / 3])
    np.testing.assert_array_equal(exact_match(student, items), [True, False])
    with pytest.raises(ValueError, match="metric"):
        answer_scores(student, items, "bleu")


def test_warmup_cosine_shape():
    assert warmup_cosine(0.0) == 0.0 and warmup_cosine(0.05) == pytest.approx(0.5)
    assert warmup_cosine(0.1) == pytest.approx(1.0) and warmup_cosine(1.0) == pytest.approx(0.1)
    assert warmup_cosine(0.55) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    values = [warmup_cosine(p) for p in np.linspace(0.1, 1, 50)]
    assert values == sorted(values, reverse=True)


def test_learning_rate_follows_the_schedule_over_the_budget(cache, tmp_path):
    env = make(cache, tmp_path / "runs", "ReAD-Mini-v1", lr=1e-3)
    play(env)
    distiller = env.unwrapped.distiller
    # the last step (of 4) spends the last quarter of the budget: its lr decays from the schedule at 0.75 toward 10%
    last_lr = distiller.trainer.optimizer.param_groups[0]["lr"]
    assert 1e-4 <= last_lr < 1e-3 * warmup_cosine(0.75) < 3e-4
    constant = make(cache, tmp_path / "constant", "ReAD-Mini-v1", lr=1e-3, lr_schedule="constant")
    play(constant)
    assert constant.unwrapped.distiller.trainer.optimizer.param_groups[0]["lr"] == 1e-3


def test_replay_trains_outside_the_budget(cache, tmp_path):
    plain = make(cache, tmp_path / "plain", "ReAD-Mini-v1", replay_share=0.0)
    replayed = make(cache, tmp_path / "replay", "ReAD-Mini-v1", replay_share=0.5)
    play(plain), play(replayed)
    ledgers = [env.unwrapped.distiller.ledger.entries for env in (plain, replayed)]
    assert [(e.generated, e.trained, e.carry_out) for e in ledgers[0]] == [(e.generated, e.trained, e.carry_out) for e in ledgers[1]]
    weights = [env.unwrapped.distiller.student.state_dict()["model.embed_tokens.weight"] for env in (plain, replayed)]
    assert not np.array_equal(weights[0].numpy(), weights[1].numpy())  # the replayed examples were trained
    drawn = replayed.unwrapped.distiller.sampler.replay(500)
    assert sum(len(item) for item in drawn) >= 500 and {item.capability for item in drawn} == {-1}


def test_lora_trains_only_adapters(cache, tmp_path):
    env = make(cache, tmp_path / "runs", "ReAD-Mini-v1", lora=True, lora_r=2, lr=1e-2)
    base = {name: value.clone() for name, value in env.unwrapped.distiller.student.state_dict().items()} if env.reset(seed=0) else None
    play(env)
    student = env.unwrapped.distiller.student
    names = [name for name, parameter in student.named_parameters() if parameter.requires_grad]
    assert names and all("lora_" in name for name in names)
    changed = {name for name, value in student.state_dict().items() if not np.array_equal(value.numpy(), base[name].numpy())}
    assert changed and all("lora_" in name for name in changed)  # the base weights stay frozen


def test_v1_defaults_and_recorded_configuration(cache, tmp_path):
    env = make(cache, tmp_path / "runs", "ReAD-Mini-v1")
    env.reset(seed=0)
    config = read_history(env.unwrapped.episode_dir)[0]["config"]
    assert config["skills"] == "v1" and config["difficulty"] is None and config["metric"] == "token"
    assert config["lr_schedule"] == "warmup_cosine" and config["replay_share"] == 0.5
    assert config["student"]["background_share"] == 0.9 and config["student"]["hidden_size"] == TINY_STUDENT["hidden_size"]
    default = gym.make("ReAD-Mini-v1").unwrapped
    assert default.budget_tokens == 80_000 and default.student_config.pretrain_tokens == 3_000_000
    assert default.budget_tokens / default.student_config.pretrain_tokens <= 0.03


def test_v0_configuration_and_cache_key_are_unchanged(cache, tmp_path):
    assert StudentConfig().key() == "455a7b36a20ddce5"  # the key ReAD-Mini-v0's students were cached under
    env = make(cache, tmp_path / "runs", "ReAD-Mini-v0")
    env.reset(seed=0)
    config = read_history(env.unwrapped.episode_dir)[0]["config"]
    assert not {"skills", "metric", "lr_schedule", "replay_share", "lora"} & set(config) and set(config["student"]) == set(StudentConfig.__dataclass_fields__) - {"skills", "background_share", "pretrain_schedule"}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"difficulty": 6}, "difficulty"),
        ({"metric": "bleu"}, "metric"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"replay_share": 1.0}, "replay_share"),
        ({"warmup_share": -0.1}, "warmup_share"),
        ({"lora_r": 0}, "lora_r"),
        ({"skills": "v3"}, "skills"),
        ({"student": {"skills": "v0", "background_share": 0.0}}, "skills"),
        ({"student": {"background_share": 1.0}}, "background_share"),
        ({"student": {"pretrain_schedule": "linear"}}, "pretrain_schedule"),
    ],
)
def test_bad_v1_configuration_is_named(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("ReAD-Mini-v1", run_dir=str(tmp_path), **kwargs)


def test_compare_gives_v1_episodes_their_own_run_folders():
    from agents.harness.compare import _keeps_run_folders

    assert _keeps_run_folders("ReAD-Mini-v1")


def test_capabilities_keep_the_paper_order():
    assert tuple(SKILLS) == PAPER_CAPABILITIES
