"""Saved agents (agents.saving): every registered agent resumes exactly; no file runs code when loaded; old pickles convert on request."""

import json
import pickle

import gymnasium as gym
import numpy as np
import pytest

from agents import AGENTS, Agent, Setting, load_agent, make_agent
from agents.saving import CONVERT_PICKLE, METADATA
from tests.agents.conftest import FAST_BANDIT, TINY_IDENTIFIER

SAVE_AT, STEPS = 7, 20  # past the bandit's warm-up (5 steps), so its network decides after the reload


def fast(name: str) -> dict:
    options = dict(FAST_BANDIT) if "bandit" in name or name in ("greedy", "read_lookahead") else {}
    if "identifier" in name:
        options["identifier_options"] = TINY_IDENTIFIER
    return options


def contents(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON tree and the arrays of a saved agent, read as plain data."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return json.loads(arrays.pop(METADATA).tobytes()), arrays


def assert_same_state(path_a, path_b) -> None:
    (tree_a, arrays_a), (tree_b, arrays_b) = contents(path_a), contents(path_b)
    assert tree_a == tree_b and arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        assert arrays_a[key].dtype == arrays_b[key].dtype
        np.testing.assert_array_equal(arrays_a[key], arrays_b[key])


def rewrite(path, out, edit) -> None:
    """Copy the saved agent at ``path`` to ``out`` with ``edit(tree)`` applied to its JSON tree."""
    tree, arrays = contents(path)
    edit(tree)
    with open(out, "wb") as handle:
        np.savez(handle, **{METADATA: np.frombuffer(json.dumps(tree).encode(), np.uint8)}, **arrays)


def play(env, agents, obs, steps) -> dict:
    """``steps`` steps of ``agents[0]``'s actions, every agent observing them; each agent's action must equal the first's."""
    for _ in range(steps):
        action = agents[0].act(obs)
        for other in agents[1:]:
            np.testing.assert_array_equal(other.act(obs), action)
        nxt, reward, _, _, info = env.step(action)
        for agent in agents:
            agent.observe(obs, action, reward, nxt, info)
        obs = nxt
    return obs


def mid_episode(name):
    """An agent of ``name`` after SAVE_AT steps of a ReAD-Surrogate-v2 episode: (env, agent, next observation)."""
    env = gym.make("ReAD-Surrogate-v2", action_mode="simplex", task="multilingual_qa")
    agent = make_agent(name, Setting.from_env(env), seed=11, **fast(name))
    obs, info = env.reset(seed=5)
    agent.reset(obs, info)
    return env, agent, play(env, [agent], obs, SAVE_AT)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_registered_agent_saved_before_or_during_an_episode_plays_on_identically(name, tmp_path):
    env = gym.make("ReAD-Surrogate-v2", action_mode="simplex", task="multilingual_qa")
    setting = Setting.from_env(env)
    agent = make_agent(name, setting, seed=11, **fast(name))
    agent.save(tmp_path / "new.npz")
    unplayed = load_agent(tmp_path / "new.npz")
    obs, info = env.reset(seed=5)
    for a in (agent, unplayed):
        a.reset(obs, info)
    obs = play(env, [agent, unplayed], obs, SAVE_AT)
    agent.save(tmp_path / "mid.npz")
    clones = [load_agent(tmp_path / "mid.npz"), make_agent(name, setting, seed=999, **fast(name)).load(tmp_path / "mid.npz")]
    assert all(type(clone) is type(agent) and clone.name == name for clone in clones)
    play(env, [agent, unplayed, *clones], obs, STEPS - SAVE_AT)
    assert all(clone.report() == agent.report() for clone in (unplayed, *clones))
    agent.save(tmp_path / "end.npz")
    for index, clone in enumerate((unplayed, *clones)):
        clone.save(tmp_path / f"end-{index}.npz")
        assert_same_state(tmp_path / "end.npz", tmp_path / f"end-{index}.npz")


def test_the_generators_128_bit_state_is_kept_exactly(tmp_path):
    agent = make_agent("random", Setting(), seed=3)
    agent.rng.random(5)
    state = agent.rng.bit_generator.state
    assert state["state"]["state"] > 2**64  # more than a float64 or an int64 holds
    agent.save(tmp_path / "a.npz")
    tree, _ = contents(tmp_path / "a.npz")
    assert tree["agent"]["fields"]["rng"]["generator"]["dict"]["state"]["dict"]["state"] == state["state"]["state"]
    clone = load_agent(tmp_path / "a.npz")
    assert clone.rng.bit_generator.state == state and np.array_equal(clone.rng.random(3), agent.rng.random(3))


def test_numpy_scalars_nan_tuples_and_a_persisted_buffer_keep_their_types(tmp_path):
    exp3 = mid_episode("exp3")[1]
    assert type(exp3.reward_scale) is np.float64
    exp3.save(tmp_path / "e.npz")
    assert type(load_agent(tmp_path / "e.npz").reward_scale) is np.float64
    lookahead = make_agent("read_lookahead", Setting(), seed=0)
    lookahead.save(tmp_path / "l.npz")
    clone = load_agent(tmp_path / "l.npz")
    assert np.isnan(clone.last_utility) and clone.setting == Setting() and type(clone.config.pair_weights) is tuple


def test_a_field_of_another_type_is_named_and_nothing_is_written(tmp_path):
    agent = make_agent("read_bandit", Setting(), seed=0)
    agent.config.extra["tags"] = {"a", "b"}
    with pytest.raises(TypeError, match=r"agent\.config\.extra\['tags'\]: a builtins\.set"):
        agent.save(tmp_path / "a.npz")
    agent.config.extra.clear()
    agent.allocations = agent.contexts
    with pytest.raises(ValueError, match=r"agent\.allocations: it is the same object as agent\.contexts"):
        agent.save(tmp_path / "a.npz")
    assert list(tmp_path.iterdir()) == []


def test_an_agent_class_outside_the_registry_is_refused():
    class Half(Agent):
        def policy(self, observation):
            return 0.5 * observation["requirement"] + 0.5 / self.setting.num_capabilities

    with pytest.raises(TypeError, match="cannot save a .*Half: saved agents are the registered classes"):
        Half(Setting()).save("unused.npz")


def test_load_refuses_another_class(tmp_path):
    make_agent("uniform", Setting()).save(tmp_path / "u.npz")
    with pytest.raises(ValueError, match="holds a UniformAgent, not a Exp3Agent"):
        make_agent("exp3", Setting()).load(tmp_path / "u.npz")


# --------------------------------------------------------------------------------- files that are not agents
class Marker:
    """Unpickling it creates the file ``path`` (what a hostile pickle could do instead)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_hostile_pickle_is_refused_and_runs_nothing(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Marker(control)))
    assert control.exists()  # the payload works when pickle reads it
    marker = tmp_path / "marker"
    old_layout = {"class": "agents.policies.baselines:UniformAgent", "state": {"x": Marker(marker)}}
    for name, payload in [("bare.pkl", Marker(marker)), ("old-layout.pkl", old_layout)]:
        (tmp_path / name).write_bytes(pickle.dumps(payload))
        with pytest.raises(ValueError, match="looks like a pickle from an older read-env.*allow_pickle=True"):
            load_agent(tmp_path / name)
        with pytest.raises(ValueError, match="not an agent saved by Agent.save"):
            make_agent("uniform", Setting()).load(tmp_path / name)
    assert not marker.exists()


def saved(tmp_path):
    make_agent("read_bandit", Setting(), seed=0).save(tmp_path / "good.npz")
    return tmp_path / "good.npz"


def write_text(tmp_path):
    (tmp_path / "bad").write_text("uniform\n")


def write_truncated(tmp_path):
    data = saved(tmp_path).read_bytes()
    (tmp_path / "bad").write_bytes(data[: len(data) // 2])


def write_object_array(tmp_path):
    with open(tmp_path / "bad", "wb") as handle:
        np.savez(
            handle,
            **{METADATA: np.frombuffer(b'{"format": "read-env-agent", "version": 1, "agent": {"array": "0"}}', np.uint8)},
            **{"0": np.array([Marker(tmp_path / "marker")], dtype=object)},
        )


def write_npy(tmp_path):
    with open(tmp_path / "bad", "wb") as handle:
        np.save(handle, np.zeros(3))


def write_without_metadata(tmp_path):
    with open(tmp_path / "bad", "wb") as handle:
        np.savez(handle, weights=np.zeros(3))


def edited(edit):
    return lambda tmp_path: rewrite(saved(tmp_path), tmp_path / "bad", edit)


def rename(fields, old, new):
    fields[new] = fields.pop(old)


@pytest.mark.parametrize("write, message", [
    (write_text, "not an .npz archive"),
    (lambda tmp_path: (tmp_path / "bad").write_bytes(b""), "not an .npz archive"),
    (write_truncated, "not a readable .npz archive"),
    (write_object_array, "entry '0' cannot be read without pickle"),
    (write_npy, "not an .npz archive"),
    (write_without_metadata, "has no entry 'agent.json'"),
    (edited(lambda tree: tree.update(version=2)), "format version 2; this read-env reads 1"),
    (edited(lambda tree: tree.update(format="other")), "does not say format 'read-env-agent'"),
    (edited(lambda tree: tree["agent"].update(object="subprocess:Popen")), "unknown class 'subprocess:Popen'"),
    (edited(lambda tree: tree["agent"]["fields"]["config"].update(dataclass="os.system")), "unknown dataclass 'os.system'"),
    (edited(lambda tree: tree["agent"]["fields"]["rng"]["generator"]["dict"].update(bit_generator="Evil")), "bit generator 'Evil'"),
    (edited(lambda tree: tree["agent"]["fields"].update(t={"eval": "0"})), r"agent\.t: .* is not a node of a saved agent"),
    (edited(lambda tree: rename(tree["agent"]["fields"], "kappa", "exploration")),
     r"agent: the saved ReadBandit lacks the fields \['kappa'\] and has the fields \['exploration'\], unknown here"),
    (edited(lambda tree: tree["agent"]["fields"]["config"]["fields"].pop("top_k")),
     r"agent\.config: the saved BanditConfig lacks the fields \['top_k'\] \(written by another version\?\)"),
    (edited(lambda tree: tree["agent"]["fields"]["ensemble"]["fields"].pop("adam_steps")),
     r"agent\.ensemble: the saved BatchedEnsemble lacks the fields \['adam_steps'\]"),
    (edited(lambda tree: tree["agent"]["fields"]["ensemble"]["fields"]["theta"].update(array="999")), "has no entry '999'"),
    (edited(lambda tree: tree.update(agent=tree["agent"]["fields"]["ensemble"])), "holds a BatchedEnsemble, not an agent"),
])  # fmt: skip
def test_a_file_that_is_not_a_saved_agent_is_refused_naming_why(tmp_path, write, message):
    write(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_agent(tmp_path / "bad")
    assert not (tmp_path / "marker").exists()


# ------------------------------------------------------------------------------------------- old pickles
def test_a_pickle_written_by_the_old_save_converts_only_when_asked_and_resumes_exactly(tmp_path):
    env, agent, obs = mid_episode("read_bandit")
    with open(tmp_path / "agent.pkl", "wb") as handle:  # exactly as Agent.save wrote before agents.saving
        pickle.dump({"class": f"{type(agent).__module__}:{type(agent).__qualname__}", "state": agent.__dict__}, handle)
    with pytest.raises(ValueError, match="allow_pickle=True"):
        load_agent(tmp_path / "agent.pkl")
    assert "allow_pickle=True" in CONVERT_PICKLE
    load_agent(tmp_path / "agent.pkl", allow_pickle=True).save(tmp_path / "agent.npz")
    play(env, [agent, load_agent(tmp_path / "agent.npz")], obs, STEPS - SAVE_AT)


def test_an_old_pickle_of_a_field_this_version_renamed_is_refused_naming_it(tmp_path):
    agent = make_agent("exp3", Setting(), seed=0)
    state = dict(agent.__dict__)
    state["weights"] = state.pop("log_weights")
    with open(tmp_path / "agent.pkl", "wb") as handle:
        pickle.dump({"class": "agents.policies.exp3:Exp3Agent", "state": state}, handle)
    with pytest.raises(ValueError, match=r"lacks the fields \['log_weights'\] and has the fields \['weights'\], unknown here"):
        load_agent(tmp_path / "agent.pkl", allow_pickle=True)


# ------------------------------------------------------------------------------------ command line, ppo_jax
def test_run_save_agent_writes_an_npz_that_loads(tmp_path):
    from agents.cli import main

    arguments = ["run", "--agent", "exp3", "--task", "math", "--budget", "2M", "--out", str(tmp_path), "--no-tensorboard", "--save-agent"]
    assert main(arguments) == 0
    agent = load_agent(tmp_path / "run-000" / "agent.npz")
    assert agent.name == "exp3" and agent.t == 20


def test_ppo_jax_models_are_read_without_pickle(tmp_path):
    pytest.importorskip("jax", reason="ppo_jax needs JAX: pip install 'read-env[jax]'")
    from agents.policies import ppo_jax

    marker = tmp_path / "marker"
    with open(tmp_path / "model.npz", "wb") as handle:
        np.savez(handle, config=np.array(["{}"], dtype=object), log_std=np.array([Marker(marker)], dtype=object))
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(Marker(marker)))
    for name in ("model.npz", "model.pkl"):
        with pytest.raises(ValueError, match="pickle"):  # numpy refuses a pickle and an object array
            ppo_jax.load(tmp_path / name)
    assert not marker.exists()
