"""Benchmark: the ReAD bandit's cost per decision + update, batched vs a straightforward reference.

Paper defaults: J = 5 members, two hidden layers of 64, Adam lr 1e-3, 200 refit steps of batch 64, 50
candidates. One "decision + update" = refit all J members on bootstrap resamples of the buffer, then score
every candidate.

* batched (``agents.policies.ensemble.BatchedEnsemble``): all members in one numpy computation, all candidates at once;
* reference (below): ``torch.nn.Sequential`` members trained one by one with ``torch.optim.Adam``, each
  candidate scored one at a time by each member, same hyperparameters.

Then both bandits play the same ReAD-Surrogate-v0 episodes (same tasks and seeds) and their final utilities are
compared, to show the decisions are the same in distribution.

Run: ``python benchmarks/bandit_speed.py [--repeats 5] [--episodes 6] [--steps 20]`` (the tests: ``--repeats 1 --episodes 2
--steps 7``)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from agents.policies.bandit import ReadBandit
from agents.base import Setting
from agents.harness.runner import run_episode
from agents.harness.stats import mean_ci
from read_env import SURROGATE_ID as ENV_ID  # the environment of the published numbers


class ReferenceEnsemble:
    """The straightforward implementation: member by member, candidate by candidate."""

    def __init__(self, input_dim, ensemble_size=5, hidden_size=64, hidden_layers=2, learning_rate=1e-3, prior_scale=0.0, rng=None):
        seed = int((rng or np.random.default_rng()).integers(2**31))
        torch.manual_seed(seed)
        self.size = ensemble_size
        self.members = []
        for _ in range(ensemble_size):
            layers, dim = [], input_dim
            for _ in range(hidden_layers):
                layers += [torch.nn.Linear(dim, hidden_size), torch.nn.ReLU()]
                dim = hidden_size
            layers.append(torch.nn.Linear(dim, 1))
            net = torch.nn.Sequential(*layers)
            self.members.append((net, torch.optim.Adam(net.parameters(), lr=learning_rate)))

    def fit(self, x, y, steps, batch_size, rng, weights=None):
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        y = torch.as_tensor(np.asarray(y, dtype=np.float32))
        n = x.shape[0]
        loss = torch.zeros(())
        for net, optimizer in self.members:
            drawn = rng.integers(0, n, n) if weights is None else rng.choice(n, n, p=np.asarray(weights) / np.sum(weights))
            boot = torch.as_tensor(drawn)
            for _ in range(steps):
                rows = boot[torch.as_tensor(rng.integers(0, n, batch_size))]
                loss = ((net(x[rows]).squeeze(-1) - y[rows]) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def predict(self, x):
        x = np.asarray(x, dtype=np.float32)
        out = np.zeros((self.size, x.shape[0]))
        for j, (net, _) in enumerate(self.members):
            for m in range(x.shape[0]):
                out[j, m] = float(net(torch.as_tensor(x[m : m + 1]))[0, 0])
        return out


class ReferenceBandit(ReadBandit):
    name = "read_bandit_reference"

    def _new_ensemble(self):
        c = self.config
        return ReferenceEnsemble(self.context_dim + self.setting.num_capabilities, c.ensemble_size, c.hidden_size, c.hidden_layers, c.learning_rate, c.prior_scale, self.rng)


def time_decisions(bandit_cls, repeats: int, buffer: int = 20) -> float:
    """Mean seconds of one refit + scoring of 50 candidates, with ``buffer`` transitions in the buffer."""
    rng = np.random.default_rng(0)
    setting = Setting(env_id=ENV_ID)
    bandit = bandit_cls(setting, seed=0)
    k = setting.num_capabilities
    obs = {"profile": rng.uniform(0, 1, k), "requirement": np.full(k, 1 / k), "budget_left": np.array([0.5]),
           "last_allocation": np.full(k, 1 / k), "last_gain": rng.normal(0, 0.005, k)}
    bandit.reset(obs, {"utility": 0.3})
    bandit.contexts = [bandit.context(obs) for _ in range(buffer)]
    bandit.allocations = list(rng.dirichlet(np.ones(k), buffer))
    bandit.rewards = list(rng.normal(0.003, 0.002, buffer))
    bandit.weights = [1.0] * buffer  # equal weights: replaces the profiling runs reset() put in the buffer
    candidates = bandit.candidates(obs)
    assert len(candidates) >= 50, len(candidates)
    bandit.refit()
    bandit.score(obs, candidates)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        bandit.refit()
        bandit.score(obs, candidates)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=6, help="paired surrogate episodes per bandit for the utility check")
    parser.add_argument("--steps", type=int, default=20, help="decision steps per episode")
    args = parser.parse_args()
    torch.set_num_threads(1)
    batched = time_decisions(ReadBandit, args.repeats)
    reference = time_decisions(ReferenceBandit, max(1, args.repeats // 2))
    print("decision + update (J=5, hidden 64 x2, 200 steps x batch 64, 50 candidates, buffer 20):")
    print(f"  batched   {1000 * batched:8.1f} ms")
    print(f"  reference {1000 * reference:8.1f} ms")
    print(f"  speed-up  {reference / batched:8.1f}x")
    tasks = ["math_word_problems", "chat_assistant", "math", "coding_assistant", "multilingual_qa", "steerability"]
    utilities = {}
    for cls in (ReadBandit, ReferenceBandit):
        episodes = [run_episode(lambda s, c=cls, i=i: c(s, seed=i), ENV_ID, task=tasks[i % len(tasks)], num_steps=args.steps, seed=i)[0]
                    for i in range(args.episodes)]
        utilities[cls.name] = np.array([100 * (episode.final_utility - episode.initial_utility) for episode in episodes])
    diff = utilities["read_bandit"] - utilities["read_bandit_reference"]
    mean, half, _ = mean_ci(diff)
    print(f"utility gain over {args.episodes} paired episodes (points): batched {utilities['read_bandit'].mean():.3f}, "
          f"reference {utilities['read_bandit_reference'].mean():.3f}, difference {mean:+.3f} (95% CI +-{half:.3f})")


if __name__ == "__main__":
    main()
