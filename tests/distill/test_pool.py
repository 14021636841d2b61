"""The teacher-data pool: prompt streams, pool builds, pooled episodes equal to online ones, running out, "auto"."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from agents.cli import main
from read_env.distill import pool as pool_module
from read_env.distill.config import DistillerConfig
from read_env.distill.engines.hf import HFEngine
from read_env.distill.env import read_history
from read_env.distill.generation import SamplingConfig
from read_env.distill.pool import PoolError, TeacherPool, build_pool, cut, pool_key, prompt_source
from read_env.distill.prompts import BUCKETS, CAPABILITIES, PromptStreams, stream_prompt

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
GREEDY = {"lr": 1e-3, "max_new_tokens": 24, "probe_items": 3, "probe_max_new_tokens": 6, "eval_items": 2, "eval_max_new_tokens": 8,
          "use_banks": False, "batch_size": 4, "micro_batch": 4, "gen_batch_size": 8, "temperature": 0.0, "prompt_streams": True,
          "min_new_tokens": 2}  # answers of 2-11 tokens where an allotment ends: some pooled answers are cut


def config(tiny_models, **options) -> DistillerConfig:
    return DistillerConfig(**{"teacher": tiny_models["teacher"], "student": tiny_models["student"], **GREEDY, **options})


def episode(tiny_models, run_dir, seed=0, **kwargs):
    """One 3-step episode of 1,200 tokens (greedy decoding): the infos of its steps."""
    options = {**GREEDY, **kwargs.pop("distiller_config", {})}
    env = gym.make("ReAD-v0", teacher=tiny_models["teacher"], student=tiny_models["student"], run_dir=str(run_dir), device="cpu",
                   budget_tokens=1200, num_steps=3, task="math_word_problems", progress=False, distiller_config=options, **kwargs)
    env.reset(seed=seed)
    action = np.linspace(-1, 1, 8, dtype=np.float32)
    infos, done = [], False
    while not done:
        _, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        done = terminated or truncated
    env.close()
    return infos


def history(episode_dir):
    """An episode's history without its timings."""
    return [{key: value for key, value in record.items() if key != "seconds"} for record in read_history(episode_dir)]


def share_references(source: Path, *targets: Path) -> None:
    """Copy the teacher's probe references (built by the first episode in ``source``) into the other run folders, so that
    only answers for training remain to generate there."""
    for target in targets:
        target.mkdir()
        for references in source.glob("probe_references_*.json"):
            shutil.copy(references, target)


@pytest.fixture
def count_generation(monkeypatch):
    """Prompts the in-process teacher is asked to answer (a list that grows)."""
    asked = []
    generate = HFEngine.generate

    def counting(self, prompts, caps, sampling):
        asked.extend(prompts)
        return generate(self, prompts, caps, sampling)

    monkeypatch.setattr(HFEngine, "generate", counting)
    return asked


def test_stream_elements_are_the_same_for_every_seed_and_allocation():
    """Two seeds drawing different capabilities in different orders draw prefixes of the same (capability, bucket) streams."""
    drawn = []
    for seed, order in ((0, ["math", "code"] * 30), (1, ["code"] * 7 + ["math"] * 50)):
        streams = PromptStreams(["math", "code"], seed=seed)
        per_stream: dict[tuple[str, str], list[str]] = {}
        for capability in order:
            prompt = streams.sample_one(capability, progress=0.5)
            per_stream.setdefault((capability, prompt.bucket), []).append(prompt.text)
        drawn.append(per_stream)
        for (capability, bucket), texts in per_stream.items():
            assert texts == [stream_prompt(capability, bucket, index).text for index in range(len(texts))]
            assert streams.used[(capability, bucket)] == len(texts)
    assert drawn[0] != drawn[1]  # the seeds pick other buckets, and the allocations other counts


def test_two_allocations_of_one_seed_draw_the_same_prompts_of_a_capability_as_far_as_both_go():
    drawn = []
    for order in (["math", "code"] * 30, ["code"] * 7 + ["math"] * 50):
        streams = PromptStreams(["math", "code"], seed=5)
        per_capability: dict[str, list[str]] = {"math": [], "code": []}
        for capability in order:
            per_capability[capability].append(streams.sample_one(capability, progress=0.5).text)
        drawn.append(per_capability)
    for capability in ("math", "code"):
        short, long = sorted((drawn[0][capability], drawn[1][capability]), key=len)
        assert len(short) >= 7 and long[:len(short)] == short


def test_stream_state_round_trips():
    streams = PromptStreams(["tool_use"], seed=3)
    for _ in range(5):
        streams.sample_one("tool_use", 0.9)
    state = json.loads(json.dumps(streams.state_dict()))
    ahead = [streams.sample_one("tool_use", 0.9).text for _ in range(4)]
    again = PromptStreams(["tool_use"], seed=99)
    again.load_state_dict(state)
    assert [again.sample_one("tool_use", 0.9).text for _ in range(4)] == ahead


def test_an_answer_cut_at_a_cap_equals_the_answer_generated_with_that_cap_under_greedy_decoding(tiny_models):
    from read_env.distill.assets import load_model, load_tokenizer

    tokenizer = load_tokenizer(tiny_models["teacher"])
    engine = HFEngine(load_model(tiny_models["teacher"]).eval(), tokenizer)
    greedy = SamplingConfig(max_new_tokens=12, temperature=0.0)
    prompts = [stream_prompt("math", bucket, 0).text for bucket in BUCKETS]
    longest = engine.generate(prompts, [12] * 3, greedy)
    for cap in (1, 5, 11):
        rows = [{"text": a.text, "generated": a.generated, "finished": a.finished, "token_ids": a.token_ids} for a in longest]
        assert [cut(row, cap, tokenizer) for row in rows] == engine.generate(prompts, [cap] * 3, greedy)


def test_a_pooled_episode_equals_the_online_one_under_greedy_decoding_and_generates_nothing(tiny_models, tmp_path, count_generation,
                                                                                             monkeypatch):
    card = build_pool(tmp_path / "pool", config(tiny_models), per_bucket=8, device="cpu", progress=False)
    assert card["rows"] == len(count_generation) > 0 and card["builds"][-1]["generated_tokens"] == card["generated_tokens"]
    online = episode(tiny_models, tmp_path / "online")
    share_references(tmp_path / "online", tmp_path / "pooled")
    count_generation.clear()
    cuts = []
    monkeypatch.setattr(pool_module, "cut", lambda row, cap, tokenizer: cuts.append(row["generated"] > cap) or cut(row, cap, tokenizer))
    pooled = episode(tiny_models, tmp_path / "pooled", teacher_pool=str(tmp_path / "pool"))
    assert count_generation == [] and any(cuts)  # nothing generated, and some answer was longer than its step's cap
    assert not any("error" in info for info in online + pooled)
    online_dir, pooled_dir = (tmp_path / run / "episode-0000" for run in ("online", "pooled"))
    assert (online_dir / "ledger.jsonl").read_bytes() == (pooled_dir / "ledger.jsonl").read_bytes()
    assert history(online_dir) == history(pooled_dir)


def test_a_pool_that_runs_out_names_the_capability_or_generates_the_rest_when_asked(tiny_models, tmp_path, count_generation):
    build_pool(tmp_path / "pool", config(tiny_models), capabilities=["math"], per_bucket=1, device="cpu", progress=False)
    rows = TeacherPool(tmp_path / "pool", pool_key(config(tiny_models), tiny_models["teacher"])).card["rows"]
    infos = episode(tiny_models, tmp_path / "strict", teacher_pool=str(tmp_path / "pool"))
    error = infos[-1]["error"]  # the pool holds math only
    assert re.search(rf"teacher pool {tmp_path / 'pool'} has no answer to \d+ prompt\(s\) of capability '(?!math)\w+' "
                     r"\(this episode has drawn \d+ easy / \d+ medium / \d+ hard elements of its streams; the pool covers none\)", error)
    assert "pool_fallback=True" in error

    online = episode(tiny_models, tmp_path / "online")
    share_references(tmp_path / "online", tmp_path / "grown", tmp_path / "again")
    count_generation.clear()
    grown = episode(tiny_models, tmp_path / "grown", teacher_pool=str(tmp_path / "pool"), distiller_config={"pool_fallback": True})
    assert count_generation and not any("error" in info for info in grown)
    added = TeacherPool(tmp_path / "pool", pool_key(config(tiny_models), tiny_models["teacher"])).card["rows"] - rows
    assert added == len(set(count_generation))  # every generated answer was kept
    count_generation.clear()
    again = episode(tiny_models, tmp_path / "again", teacher_pool=str(tmp_path / "pool"))
    assert count_generation == []
    for run in ("grown", "again"):
        assert (tmp_path / run / "episode-0000/ledger.jsonl").read_bytes() == (tmp_path / "online/episode-0000/ledger.jsonl").read_bytes()
    assert history(tmp_path / "online/episode-0000") == history(tmp_path / "grown/episode-0000") == history(tmp_path / "again/episode-0000")


def test_a_build_extends_a_pool_and_refuses_one_of_another_key(tiny_models, tmp_path, count_generation):
    first = build_pool(tmp_path / "pool", config(tiny_models), capabilities=["code"], per_bucket=2, device="cpu", progress=False)
    asked = len(count_generation)
    second = build_pool(tmp_path / "pool", config(tiny_models), capabilities=["code"], per_bucket=5, device="cpu", progress=False)
    elements = {n: {stream_prompt("code", b, i).text for b in BUCKETS for i in range(n)} for n in (2, 5)}
    new = elements[5] - elements[2]
    assert len(count_generation) - asked == second["builds"][-1]["prompts"] == len(new)
    assert second["rows"] == first["rows"] + len(new) and len(second["builds"]) == 2
    assert second["covered"]["code"] == {b: 5 for b in BUCKETS}
    assert len(list((tmp_path / "pool" / "shards").iterdir())) == 2
    with pytest.raises(PoolError, match=r"another sampling \(\{'max_new_tokens.: 24, .temperature.: 0.0"):
        build_pool(tmp_path / "pool", config(tiny_models, temperature=0.5), per_bucket=1, device="cpu", progress=False)
    with pytest.raises(PoolError, match="another teacher"):
        build_pool(tmp_path / "pool", config(tiny_models, teacher=tiny_models["other"], student=tiny_models["other"]), per_bucket=1,
                   device="cpu", progress=False)
    with pytest.raises(PoolError, match="another prompts"):
        build_pool(tmp_path / "pool", config(tiny_models, probe_items=4), per_bucket=1, device="cpu", progress=False)


def test_the_auto_pool_is_built_on_first_use_in_the_cache_and_reused(tiny_models, tmp_path, count_generation):
    options = {"cache": str(tmp_path / "cache")}
    episode(tiny_models, tmp_path / "online")
    share_references(tmp_path / "online", tmp_path / "runs")
    count_generation.clear()
    first = episode(tiny_models, tmp_path / "runs", teacher_pool="auto", distiller_config=options)
    assert count_generation and not any("error" in info for info in first)
    (folder,) = (tmp_path / "cache" / "pools").iterdir()
    card = json.loads((folder / "card.json").read_text())
    assert card["rows"] == card["episodes"]["answers"] == len(set(count_generation)) and card["episodes"]["seconds"] > 0
    count_generation.clear()
    second = episode(tiny_models, tmp_path / "runs", teacher_pool="auto", distiller_config=options)
    assert count_generation == [] and not any("error" in info for info in second)
    assert history(tmp_path / "runs/episode-0000") == history(tmp_path / "runs/episode-0001")


@pytest.mark.parametrize("options, match", [
    ({"teacher_pool": "pools/x"}, "teacher_pool answers the prompt streams: set prompt_streams=True"),
    ({"pool_fallback": True}, r"pool_fallback=True needs a teacher_pool"),
])
def test_bad_pool_options_fail_at_construction(options, match):
    with pytest.raises(ValueError, match=match):
        DistillerConfig(**options)


def test_a_missing_pool_folder_fails_at_make(tiny_models, tmp_path):
    with pytest.raises(PoolError, match=rf"no teacher pool at teacher_pool={tmp_path / 'nowhere'} \(card.json missing\): build one with"):
        gym.make("ReAD-v0", teacher=tiny_models["teacher"], student=tiny_models["student"], run_dir=str(tmp_path / "runs"),
                 teacher_pool=str(tmp_path / "nowhere"))


def test_the_prompt_source_hash_follows_what_the_streams_are_drawn_from():
    base = prompt_source(DistillerConfig(use_banks=False))
    assert base == prompt_source(DistillerConfig(use_banks=False, lr=1.0, max_new_tokens=5))
    assert base["hash"] != prompt_source(DistillerConfig(use_banks=False, eval_items=9))["hash"]
    assert base["forbidden_items"] > 0 and set(CAPABILITIES) >= set(base["bank_items"])


def test_pool_command_builds_shows_and_refuses_another_key(tiny_models, tmp_path, capsys):
    path = str(tmp_path / "pool")
    common = ["--teacher", tiny_models["teacher"], "--device", "cpu", "--quiet", "--option", "use_banks=false",
              "--option", "max_new_tokens=6"]
    assert main(["pool", "build", path, "--capabilities", "multilingual", "--per-bucket", "2", *common]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ")
    assert main(["pool", "show", path]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["key"]["sampling"]["max_new_tokens"] == 6 and list(card["covered"]) == ["multilingual"]
    assert main(["pool", "build", path, *common, "--option", "temperature=0"]) == 2
    assert "read-env pool: error: teacher pool" in capsys.readouterr().err
    assert main(["pool", "show", str(Path(path) / "nothing")]) == 2


def test_an_open_pool_answers_what_another_writer_added_since(tiny_models, tmp_path):
    options = config(tiny_models)
    build_pool(tmp_path / "pool", options, capabilities=["code"], per_bucket=1, device="cpu", progress=False)
    engine = pool_module.PoolEngine(TeacherPool(tmp_path / "pool", pool_key(options, tiny_models["teacher"])), tokenizer=None)
    later = stream_prompt("code", "hard", 3).text
    with pytest.raises(pool_module.PoolMissError, match="has no answer to 1 prompt"):
        engine.generate([later], [24], SamplingConfig(24, 0.0))
    build_pool(tmp_path / "pool", options, capabilities=["code"], per_bucket=4, device="cpu", progress=False)  # another writer
    (answer,) = engine.generate([later], [24], SamplingConfig(24, 0.0))
    assert 1 <= answer.generated == len(answer.token_ids) <= 24
