"""RunStore on its own (no models): resume lookup, commit and checkpoint pruning, reopening, pruning episodes, scratch."""

from __future__ import annotations

import pytest

from read_env.distill.run_store import RunStore, read_history

CONFIG = {"budget_tokens": 100}


def committed_episode(store: RunStore, steps: int, terminated: bool = False) -> None:
    """An episode of ``steps`` committed steps in the next folder, each with its checkpoint written first."""
    store.episode_dir = store.new_folder()
    for step in range(steps + 1):
        (store.episode_dir / f"checkpoint-{step}").mkdir(parents=True)
        store.commit({"step": step, **({"config": CONFIG} if step == 0 else {}), "terminated": terminated and step == steps})


def test_commit_keeps_only_the_committed_steps_checkpoint(tmp_path):
    store = RunStore(tmp_path)
    committed_episode(store, 2)
    assert store.episode_dir.name == "episode-0000"
    assert [path.name for path in store.episode_dir.glob("checkpoint-*")] == ["checkpoint-2"]
    assert [record["step"] for record in read_history(store.episode_dir)] == [0, 1, 2]


def test_unfinished_finds_the_newest_episode_before_its_truncated_step_and_reopen_drops_the_rest(tmp_path):
    store = RunStore(tmp_path)
    committed_episode(store, 1, terminated=True)
    assert store.unfinished(CONFIG) is None  # the newest episode finished
    committed_episode(store, 2)
    store.commit({"step": 2, "truncated": True})
    (store.episode_dir / "checkpoint-3.tmp").mkdir()  # a write killed midway
    folder, records = RunStore(tmp_path).unfinished(CONFIG)
    assert folder.name == "episode-0001" and [record["step"] for record in records] == [0, 1, 2]
    fresh = RunStore(tmp_path)
    fresh.reopen(folder, records)
    assert fresh.episode_dir == folder and len(read_history(folder)) == 3
    assert [path.name for path in folder.glob("checkpoint-*")] == ["checkpoint-2"]
    with pytest.raises(ValueError, match="episode-0001 was run with another configuration"):
        fresh.unfinished({"budget_tokens": 200})


def test_drop_old_episodes_keeps_the_newest_finished_and_every_unfinished(tmp_path):
    store = RunStore(tmp_path, keep_episodes=1)
    for terminated in (True, False, True, True):
        committed_episode(store, 1, terminated)
    store.drop_old_episodes()
    assert [path.name for path in store.episodes()] == ["episode-0001", "episode-0003"]


def test_scratch_episodes_live_in_a_temporary_folder_removed_by_the_next_and_at_the_end(tmp_path):
    store = RunStore(tmp_path, scratch=True)
    committed_episode(store, 2)
    first = store.episode_dir
    assert first.name.startswith("scratch-") and [path.name for path in first.glob("checkpoint-*")] == ["checkpoint-0"]
    committed_episode(store, 1)
    assert not first.exists() and store.episodes() == []
    store.remove_scratch()
    assert list(tmp_path.iterdir()) == [] and store.episode_dir is None


def test_an_episode_saved_before_a_distiller_field_existed_resumes_unless_the_field_is_changed():
    from read_env.distill.config import DistillerConfig
    from read_env.distill.env import same_run

    now = {"budget_tokens": 100, "distiller": DistillerConfig().run_identity()}
    older = {"budget_tokens": 100, "distiller": {key: value for key, value in now["distiller"].items() if key != "packed"}}
    assert same_run(older, now)
    assert not same_run(older, {**now, "distiller": DistillerConfig(packed=True).run_identity()})
    assert not same_run(older, {**now, "budget_tokens": 200})
    assert not same_run({**older, "distiller": {**older["distiller"], "lr": 1e-3}}, now)
