"""PPO in the PureJaxRL style on the JAX surrogates: rollout and update compiled into one program.

``train(config)`` builds ``config.num_envs`` environments of :func:`read_env.jax.make` (each episode a fresh
random world and a task drawn from ``config.tasks``; the budgets spread over the environments, as
:mod:`agents.policies.ppo` trains SB3's PPO) and runs ``num_updates`` iterations of::

    rollout   episodes_per_update whole episodes of every environment (vmap), actions ~ N(mu(obs), exp(log_std)^2)
    advantage GAE(gamma, gae_lambda) within each episode (the value after the last step is 0)
    update    update_epochs passes over num_minibatches shuffled minibatches: clipped surrogate loss
              + vf_coef * value loss - ent_coef * entropy, Adam with global-norm clipping

as one ``jax.lax.scan`` compiled with ``jax.jit`` (Schulman et al. 2017; Lu et al. 2022, PureJaxRL). The
network is written by hand: a tanh MLP actor (``config.hidden``) for the mean of the logit action, a
state-independent ``log_std``, and a separate tanh MLP critic. Every hyperparameter is a field of
:class:`PPOConfig`. The environment clips the sampled logits to [-1, 1]; the log-probabilities are those
of the unclipped samples (as SB3's PPO).

Episodes last exactly ``num_steps`` steps, so every environment's episodes start together: the rollout
resets all environments once per episode and steps them with gymnax's ``step_env`` (no autoreset).
gymnax's ``step`` would compute a reset at every step, and a reset that draws a random world costs ~40
steps.

``save(path, network, config)`` writes the network and its config to one ``.npz`` file;
``make_agent("ppo_jax:PATH", setting)`` (``read-env compare --agents ppo_jax:PATH``) plays it as a
deterministic agent (the mean action, clipped) on the numpy environments, so it is measured by the same
tables as SB3's PPO. ``read-env train --algo ppo_jax`` trains and saves ``OUT/model.npz``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from agents.base import Agent, Setting
from agents.policies.ppo import TRAIN_BUDGETS, TRAIN_TASKS
from read_env import jax as read_jax
from read_env.registration import DEFAULT_ENV_ID

Network = dict[str, jax.Array]
"""Parameters by name: ``actor_{i}_w``, ``actor_{i}_b``, ``critic_{i}_w``, ``critic_{i}_b`` (layer ``i``), ``log_std``."""


@dataclass(frozen=True)
class PPOConfig:
    """Every setting of a training run (the environments' and PPO's)."""

    env_id: str = DEFAULT_ENV_ID  # one of read_env.jax.ENVIRONMENTS: ReAD-Surrogate-v0, -v1 or -v2
    world: str = "random"  # "random": every episode a new world; "paper" or a world .json
    tasks: tuple[str, ...] = TRAIN_TASKS  # each episode draws one uniformly ("random": a Dirichlet requirement)
    budgets: tuple[int, ...] = TRAIN_BUDGETS  # spread over the environments
    num_steps: int = 20  # decisions per episode
    total_timesteps: int = 2_000_000
    num_envs: int = 256
    episodes_per_update: int = 1  # whole episodes per environment per update
    update_epochs: int = 4
    num_minibatches: int = 8
    learning_rate: float = 3e-4
    anneal_lr: bool = True  # linearly to 0 over the run
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (64, 64)
    log_std_init: float = -1.0
    seed: int = 0

    @property
    def batch_size(self) -> int:
        """Environment steps per update."""
        return self.num_envs * self.episodes_per_update * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    def __post_init__(self) -> None:
        if self.num_updates < 1:
            raise ValueError(f"total_timesteps={self.total_timesteps} is less than one update ({self.batch_size} steps)")
        if self.batch_size % self.num_minibatches:
            raise ValueError(f"num_minibatches={self.num_minibatches} must divide the {self.batch_size} steps of an update")


class Transition(NamedTuple):
    observation: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    done: jax.Array


# ------------------------------------------------------------------------------------------------- network
def init_network(key: jax.Array, observation_size: int, action_size: int, config: PPOConfig) -> Network:
    """Orthogonal weights (gain sqrt(2) hidden, 0.01 for the actor's output, 1 for the critic's), zero biases."""
    network: Network = {"log_std": jnp.full(action_size, config.log_std_init, jnp.float32)}
    for head, out_size, out_gain in (("actor", action_size, 0.01), ("critic", 1, 1.0)):
        sizes = (observation_size, *config.hidden, out_size)
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            key, layer_key = jax.random.split(key)
            gain = out_gain if i == len(sizes) - 2 else np.sqrt(2.0)
            network[f"{head}_{i}_w"] = jax.nn.initializers.orthogonal(gain)(layer_key, (fan_in, fan_out), jnp.float32)
            network[f"{head}_{i}_b"] = jnp.zeros(fan_out, jnp.float32)
    return network


def _mlp(network: Network, head: str, x: jax.Array) -> jax.Array:
    layers = sum(name.startswith(f"{head}_") and name.endswith("_w") for name in network)
    for i in range(layers):
        x = x @ network[f"{head}_{i}_w"] + network[f"{head}_{i}_b"]
        x = jnp.tanh(x) if i < layers - 1 else x
    return x


def action_mean(network: Network, observation: jax.Array) -> jax.Array:
    """The policy's mean logit action [..., K] of flat observations [..., 4K + 1]."""
    return _mlp(network, "actor", observation)


def value(network: Network, observation: jax.Array) -> jax.Array:
    """The critic's value [...] of flat observations [..., 4K + 1]."""
    return _mlp(network, "critic", observation)[..., 0]


def log_prob(network: Network, observation: jax.Array, action: jax.Array) -> jax.Array:
    """Log-density [...] of actions [..., K] under the diagonal Gaussian policy."""
    log_std = network["log_std"]
    z = (action - action_mean(network, observation)) / jnp.exp(log_std)
    return (-0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2 * jnp.pi)).sum(axis=-1)


# ------------------------------------------------------------------------------------------ environments
@functools.cache
def make_envs(config: PPOConfig, num_envs: int) -> tuple[read_jax.SurrogateEnv, read_jax.EnvParams]:
    """The environment and the stacked params of ``num_envs`` of ``config``'s environments (budgets in turn);
    one environment object per config, so compiled rollouts are reused."""
    made = [read_jax.make(config.env_id, world=config.world, task=config.tasks, budget_tokens=int(budget), num_steps=config.num_steps) for budget in config.budgets]
    stacked = read_jax.stack_params([params for _, params in made])
    rows = jnp.arange(num_envs) % len(config.budgets)
    return made[0][0], jax.tree.map(lambda leaf: leaf[rows], stacked)


@functools.partial(jax.jit, static_argnames=("env", "deterministic"))
def play_episodes(env: read_jax.SurrogateEnv, env_params: read_jax.EnvParams, network: Network, key: jax.Array, deterministic: bool = False) -> tuple[Transition, jax.Array]:
    """One whole episode of each of the N environments of ``env_params`` (stacked): transitions [num_steps, N]
    and the noise-free final utilities [N] (NaN on v0). Actions are sampled, or the clipped mean when
    ``deterministic``."""
    num_envs = env_params.budget_tokens.shape[0]
    reset_key, key = jax.random.split(key)
    observation, env_state = jax.vmap(env.reset_env)(jax.random.split(reset_key, num_envs), env_params)

    def env_step(carry, key):
        env_state, observation = carry
        action_key, step_key = jax.random.split(key)
        mean = action_mean(network, observation)
        action = jnp.clip(mean, -1.0, 1.0) if deterministic else mean + jnp.exp(network["log_std"]) * jax.random.normal(action_key, mean.shape)
        next_observation, env_state, reward, terminated, info = jax.vmap(env.step_env)(jax.random.split(step_key, num_envs), env_state, action, env_params)
        transition = Transition(observation, action, log_prob(network, observation, action), value(network, observation), reward, terminated.astype(jnp.float32))
        return (env_state, next_observation), (transition, info.get("final_utility", jnp.full(num_envs, jnp.nan)))

    _, (trajectory, final_utility) = jax.lax.scan(env_step, (env_state, observation), jax.random.split(key, env.num_steps))
    return trajectory, final_utility[-1]


# ------------------------------------------------------------------------------------------------ training
def make_train(config: PPOConfig) -> Callable[[jax.Array], tuple[Network, dict[str, jax.Array]]]:
    """``train(key) -> (network, metrics)``, pure and jit-able; ``metrics["episode_return"]`` [num_updates] is the
    mean return of the episodes of each update's rollout."""
    env, env_params = make_envs(config, config.num_envs)
    observation_size = env.observation_space(env_params).shape[0]
    action_size = env.action_space(env_params).shape[0]
    minibatch_size = config.batch_size // config.num_minibatches
    schedule = optax.linear_schedule(config.learning_rate, 0.0, config.num_updates * config.update_epochs * config.num_minibatches)
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(schedule if config.anneal_lr else config.learning_rate, eps=1e-5))

    def loss(network: Network, batch: Transition, advantages: jax.Array, targets: jax.Array) -> jax.Array:
        ratio = jnp.exp(log_prob(network, batch.observation, batch.action) - batch.log_prob)
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        actor_loss = -jnp.minimum(ratio * advantages, jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * advantages).mean()
        predicted = value(network, batch.observation)
        clipped = batch.value + jnp.clip(predicted - batch.value, -config.clip_eps, config.clip_eps)
        value_loss = 0.5 * jnp.maximum(jnp.square(predicted - targets), jnp.square(clipped - targets)).mean()
        entropy = (network["log_std"] + 0.5 * jnp.log(2 * jnp.pi * jnp.e)).sum()
        return actor_loss + config.vf_coef * value_loss - config.ent_coef * entropy

    def advantages_and_targets(trajectory: Transition) -> tuple[jax.Array, jax.Array]:
        def backward(carry, transition):
            advantage, next_value = carry
            not_done = 1.0 - transition.done
            delta = transition.reward + config.gamma * next_value * not_done - transition.value
            advantage = delta + config.gamma * config.gae_lambda * not_done * advantage
            return (advantage, transition.value), advantage

        zeros = jnp.zeros(config.num_envs)
        _, advantages = jax.lax.scan(backward, (zeros, zeros), trajectory, reverse=True)
        return advantages, advantages + trajectory.value

    def update(runner, _):
        network, optimizer_state, key = runner
        key, rollout_key = jax.random.split(key)
        episodes = jax.vmap(lambda key: play_episodes(env, env_params, network, key)[0])  # [episodes, num_steps, num_envs, ...]
        trajectory = episodes(jax.random.split(rollout_key, config.episodes_per_update))
        trajectory = jax.tree.map(lambda leaf: leaf.reshape(-1, *leaf.shape[2:]), trajectory)  # [episodes * num_steps, num_envs, ...]
        advantages, targets = advantages_and_targets(trajectory)

        def epoch(carry, order):
            def minibatches(leaf):
                flat = leaf.reshape(config.batch_size, *leaf.shape[2:])[order]
                return flat.reshape(config.num_minibatches, minibatch_size, *leaf.shape[2:])

            def minibatch_step(carry, data):
                network, optimizer_state = carry
                grads = jax.grad(loss)(network, *data)
                updates, optimizer_state = optimizer.update(grads, optimizer_state)
                return (optax.apply_updates(network, updates), optimizer_state), None

            data = jax.tree.map(minibatches, (trajectory, advantages, targets))
            return jax.lax.scan(minibatch_step, carry, data)[0], None

        key, shuffle_keys = jax.lax.scan(lambda key, _: tuple(jax.random.split(key)), key, None, config.update_epochs)
        orders = jax.vmap(lambda shuffle_key: jax.random.permutation(shuffle_key, config.batch_size))(shuffle_keys)  # one batched sort
        (network, optimizer_state), _ = jax.lax.scan(epoch, (network, optimizer_state), orders)
        mean_return = trajectory.reward.sum() / (config.num_envs * config.episodes_per_update)
        return (network, optimizer_state, key), mean_return

    def train(key: jax.Array) -> tuple[Network, dict[str, jax.Array]]:
        key, network_key = jax.random.split(key)
        network = init_network(network_key, observation_size, action_size, config)
        (network, *_), returns = jax.lax.scan(update, (network, optimizer.init(network), key), None, config.num_updates)
        return network, {"episode_return": returns}

    return train


def train(config: PPOConfig = PPOConfig(), out_dir: str | Path | None = None) -> tuple[Network, dict[str, Any]]:
    """Compile and run ``make_train(config)``; returns the network and metrics (``episode_return`` per update,
    ``compile_s`` and ``train_s`` wall seconds, ``steps_per_second`` of the compiled run). Saves
    ``OUT/model.npz`` when ``out_dir`` is given."""
    start = time.perf_counter()
    compiled = jax.jit(make_train(config)).lower(jax.random.key(config.seed)).compile()
    compiled_at = time.perf_counter()
    network, metrics = jax.block_until_ready(compiled(jax.random.key(config.seed)))
    done = time.perf_counter()
    steps = config.num_updates * config.batch_size
    report = {"episode_return": np.asarray(metrics["episode_return"]).tolist(), "compile_s": compiled_at - start, "train_s": done - compiled_at,
              "steps": steps, "steps_per_second": steps / (done - compiled_at)}  # fmt: skip
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        save(Path(out_dir) / "model.npz", network, config)
    return network, report


def evaluate(network: Network, config: PPOConfig, num_episodes: int = 1024, seed: int = 1) -> dict[str, float]:
    """Mean return and mean noise-free final utility (NaN on v0) of the deterministic policy over
    ``num_episodes`` episodes of ``config``'s environments (fresh worlds and tasks drawn from ``seed``)."""
    env, env_params = make_envs(config, num_episodes)
    trajectory, final_utility = play_episodes(env, env_params, network, jax.random.key(seed), deterministic=True)
    return {"return": float(trajectory.reward.sum(axis=0).mean()), "final_utility": float(final_utility.mean())}


# ---------------------------------------------------------------------------------------- save and load
def save(path: str | Path, network: Network, config: PPOConfig) -> None:
    """Write the network's arrays and the config (JSON) to one ``.npz`` file."""
    arrays = {name: np.asarray(array) for name, array in network.items()}
    with open(path, "wb") as handle:
        np.savez(handle, config=np.array(json.dumps(dataclasses.asdict(config))), **arrays)


def load(path: str | Path) -> tuple[Network, PPOConfig]:
    """The network and config written by :func:`save`."""
    with np.load(path, allow_pickle=False) as data:  # a pickle or an object array is a ValueError, never run
        if "config" not in data or "log_std" not in data:
            raise ValueError(f"{path} is not a ppo_jax model (written by agents.policies.ppo_jax.save)")
        fields = json.loads(str(data["config"]))
        network = {name: jnp.asarray(data[name]) for name in data.files if name != "config"}
    fields = {name: tuple(value) if isinstance(value, list) else value for name, value in fields.items()}
    return network, PPOConfig(**fields)


_compiled_action_mean = jax.jit(action_mean)


class JaxPPOAgent(Agent):
    """A trained ppo_jax network as an agent on the numpy environments: the mean logit action, clipped to [-1, 1]."""

    name = "ppo_jax"
    action_mode = "logits"

    def __init__(self, setting: Setting, seed: int | None, network: Network, config: PPOConfig) -> None:
        super().__init__(setting, seed)
        expected = network["actor_0_w"].shape[0]
        if expected != 4 * setting.num_capabilities + 1:
            raise ValueError(f"this ppo_jax network reads {expected} observation entries ({(expected - 1) // 4} capabilities), "
                             f"but the environment has {setting.num_capabilities} capabilities")  # fmt: skip
        self.network, self.config = network, config

    def policy(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        flat = np.concatenate([observation[key] for key in read_jax.OBSERVATION_KEYS]).astype(np.float32)
        return np.clip(np.asarray(_compiled_action_mean(self.network, flat), dtype=np.float64), -1.0, 1.0)

    def save(self, path: str | Path) -> None:
        save(path, self.network, self.config)

    def load(self, path: str | Path) -> Agent:
        self.network, self.config = load(path)
        return self


def load_agent(path: str | Path, setting: Setting, seed: int | None = None) -> JaxPPOAgent:
    """The agent of a model saved by :func:`save` (``make_agent("ppo_jax:PATH", setting)``)."""
    if not Path(path).is_file():
        raise ValueError(f"no ppo_jax model at {path}")
    network, config = load(path)
    return JaxPPOAgent(setting, seed, network, config)
