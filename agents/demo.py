"""The main job (``read-env demo``): the ReAD bandit and a uniform allocation on real distillation.

Each agent plays one episode of ``ReAD-v0`` with the embedded teacher (SmolLM2-135M-Instruct) and student
(its 6-layer cut) at a small budget, from the same seed. The job prints the capability profiles before and
after and the task utility of both, and writes ``demo.png``, TensorBoard logs (``tb/<agent>``), each step's
history (``<agent>/history.jsonl`` from the runner) and ``summary.json`` into a fresh run folder
``--out/run-NNN`` (a rerun never mixes with an earlier run). The environments share ``env/``: the teacher's
probe references (built once), one ``episode-NNNN`` per agent in the order played (its history, ledger and
the trained student's weights) and, while the ReAD bandit profiles, its scratch episodes.

Set-up is done once: the first reset loads the models, builds the probe references and measures the
untrained student; the bandit's profiling runs and the next agent's episode reuse all three
(:func:`read_env.distill.models.shared_models`). The teacher's answers come from the automatic teacher-data pool
beside the embedded models (``teacher_pool="auto"``, :mod:`read_env.distill.pool`): an answer is generated the
first time any episode asks for it and reused by every later episode, profiling run and demo.

The student trains LoRA adapters (rank 8, peft) at a learning rate of 1e-3, so a checkpoint (adapter and
its AdamW state) is a few MB and the run folder stays well under 500 MB; ``lora=False`` fine-tunes all
weights as the demo did before (each checkpoint then holds about 600 MB, two at once while one is written)
at DistillerConfig's learning rate of 2e-5 unless ``lr`` says otherwise.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from read_env.registration import REAL_ID

if TYPE_CHECKING:
    from agents.harness.runner import Episode

LORA_LR = 1e-3
"""The demo's learning rate for LoRA adapters (peft's examples use 1e-3 for small models; adapters start at 0)."""


@dataclass
class DemoConfig:
    """Every setting of the main job; defaults sized to finish within 15 minutes on 2 CPU cores."""

    task: str = "math_word_problems"
    budget_tokens: int = 6_000
    num_steps: int = 5
    seed: int = 0
    agents: tuple[str, ...] = ("read_bandit", "uniform")
    bandit_warmup_steps: int = 2  # the paper's 5 random warm-up steps would be the whole of a 5-step episode
    device: str = "auto"
    out: str = "runs/demo"
    lora: bool = True
    lr: float | None = None  # None: LORA_LR with LoRA, DistillerConfig's default (2e-5) for full fine-tuning
    distiller_config: dict[str, Any] = field(default_factory=lambda: {"probe_items": 8, "eval_items": 4, "max_new_tokens": 48,
                                                                      "prompt_streams": True, "teacher_pool": "auto"})


def run_demo(config: DemoConfig) -> dict[str, Any]:
    """Play every agent of ``config`` for one episode; return and write the summary."""
    from agents.registry import make_agent
    from agents.harness.runner import run_episode
    from agents.harness.step_log import StepLog, fresh_run_dir

    out = fresh_run_dir(Path(config.out))
    lr = config.lr if config.lr is not None else (LORA_LR if config.lora else None)
    distiller_config = {**config.distiller_config, "lora": config.lora, **({"lr": lr} if lr is not None else {})}
    episodes = {}
    capabilities: list[str] = []
    for name in config.agents:
        with StepLog(out / name / "history.jsonl", out / "tb" / name, config.num_steps, f"{name:12s}") as log:

            def factory(setting, name=name, log=log):
                capabilities[:] = log.capabilities = list(setting.capabilities)
                overrides = {"warmup_steps": config.bandit_warmup_steps} if "bandit" in name else {}
                return make_agent(name, setting, seed=config.seed, **overrides)

            env_kwargs = {"run_dir": str(out / "env"), "resume": False, "device": config.device, "distiller_config": distiller_config}
            with warnings.catch_warnings():  # the demo plays ReAD-v0 on purpose: ReAD-v1, Gymnasium's suggestion, is sized for a GPU
                warnings.filterwarnings("ignore", message=f".*{REAL_ID} is out of date", category=DeprecationWarning)
                episodes[name], _ = run_episode(factory, REAL_ID, config.task, config.budget_tokens, config.num_steps, config.seed, env_kwargs,
                                                on_step=log)

    summary = {
        "config": asdict(config),
        "units": "profiles and utilities as the environment reports them, in [0, 1] (the printed table: points, 100 x)",
        "run_dir": str(out),
        "capabilities": capabilities,
        "agents": {
            name: {
                "initial_profile": episode.initial_profile,
                "final_profile": episode.final_profile,
                "initial_utility": episode.initial_utility,
                "final_utility": episode.final_utility,
                "allocations": [step["allocation"] for step in episode.steps],
                "wall_time_s": episode.wall_time_s,
            }
            for name, episode in episodes.items()
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(episode_table(capabilities, episodes))
    print(f"\nwrote {out / 'demo.png'}, {out / 'summary.json'}, TensorBoard logs in {out / 'tb'}")
    plot_demo(summary, out / "demo.png")
    return summary


def episode_table(capabilities: Sequence[str], episodes: Mapping[str, Episode]) -> str:
    """A text table of episodes by name: the start profile (the first episode's) and each episode's final profile
    per capability, and its task utility, in points (100 x score); the tokens it spent and its minutes."""
    names = list(episodes)
    width = [max(12, len(name)) for name in names]
    first = episodes[names[0]]

    def row(label: str, start: str, cells: Sequence[str]) -> str:
        return f"{label:18s} {start:>7s} " + " ".join(f"{cell:>{size}s}" for cell, size in zip(cells, width))

    lines = [row("points", "start", names)]
    for index, capability in enumerate(capabilities):
        finals = [f"{100 * episodes[name].final_profile[index]:.2f}" for name in names]
        lines.append(row(capability, f"{100 * first.initial_profile[index]:.2f}", finals))
    lines.append(row("task utility", f"{100 * first.initial_utility:.2f}", [f"{100 * episodes[name].final_utility:.2f}" for name in names]))
    lines.append(row("tokens", "", [f"{sum(step['tokens_used'] for step in episodes[name].steps):,}" for name in names]))
    lines.append(row("minutes", "", [f"{episodes[name].wall_time_s / 60:.2f}" for name in names]))
    return "\n".join(lines)


def plot_demo(summary: dict[str, Any], path: Path) -> Path:
    """Profiles before/after per agent (bars) and each agent's allocation over steps (stacked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["agents"])
    capabilities = summary["capabilities"]
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(5 + 4 * len(names), 4.2))
    x = np.arange(len(capabilities))
    width = 0.8 / (1 + len(names))
    axes[0].bar(x, summary["agents"][names[0]]["initial_profile"], width, label="start", color="lightgray")
    for offset, name in enumerate(names, start=1):
        record = summary["agents"][name]
        axes[0].bar(x + offset * width, record["final_profile"], width, label=f"{name} (utility {100 * record['final_utility']:.2f} points)")
    axes[0].set_xticks(x + width * len(names) / 2, capabilities, rotation=45, ha="right")
    axes[0].set_ylabel("probe score (0-1)")
    axes[0].set_title(f"{summary['config']['task']}, {summary['config']['budget_tokens']:,} tokens")
    axes[0].legend(fontsize=8)
    for ax, name in zip(axes[1:], names):
        allocations = np.array(summary["agents"][name]["allocations"])
        steps = np.arange(1, len(allocations) + 1)
        ax.stackplot(steps, allocations.T, labels=capabilities)
        ax.set_title(f"{name}: allocation per step")
        ax.set_xlabel("step")
        ax.set_ylim(0, 1)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
