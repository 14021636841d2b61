"""PNG plots of a comparison: utility per agent with error bars, allocation over steps, profile trajectory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from read_env.capabilities import PAPER_CAPABILITIES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_all(records: list[dict[str, Any]], tables: dict[str, list[dict[str, Any]]], agents: Sequence[str], out: Path) -> list[Path]:
    if not records:
        return []
    return [plot_utility(tables, agents, out / "utility.png"), plot_allocations(records, agents, out / "allocation.png"), plot_profiles(records, agents, out / "profile.png")]


def plot_utility(tables: dict[str, list[dict[str, Any]]], agents: Sequence[str], path: Path) -> Path:
    """Bars: paired utility difference against uniform (points, 95% CI) per agent, one panel per budget."""
    plt = _pyplot()
    rows = tables["summary"]
    budgets = sorted({r["budget_M"] for r in rows})
    fig, axes = plt.subplots(1, len(budgets), figsize=(5.5 * len(budgets), 4.2), squeeze=False)
    for ax, budget in zip(axes[0], budgets):
        sub = [r for r in rows if r["budget_M"] == budget]
        names = [r["agent"] for r in sub]
        means = np.array([r["diff_vs_uniform"] for r in sub])
        errors = np.array([r["diff_vs_uniform"] - r["ci95_low"] for r in sub])
        colors = ["tab:red" if "bandit" in n else "tab:gray" if n == "oracle" else "tab:blue" for n in names]
        ax.bar(range(len(sub)), means, yerr=np.nan_to_num(errors), color=colors, capsize=3)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xticks(range(len(sub)), names, rotation=45, ha="right")
        ax.set_title(f"{budget:g}M tokens: utility vs uniform")
        ax.set_ylabel("utility difference (points, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pick(records: list[dict[str, Any]]) -> tuple[str, int]:
    tasks = list(dict.fromkeys(r["task"] for r in records))
    multi = [t for t in tasks if t not in PAPER_CAPABILITIES]
    return (multi or tasks)[0], max(r["budget_tokens"] for r in records)


def plot_allocations(records: list[dict[str, Any]], agents: Sequence[str], path: Path) -> Path:
    """Stacked areas: mean allocation per step (over seeds) of each agent, on one task and budget."""
    plt = _pyplot()
    task, budget = _pick(records)
    present = [a for a in agents if any(r["agent"] == a and r["task"] == task and r["budget_tokens"] == budget for r in records)]
    cols = min(4, len(present))
    rows = int(np.ceil(len(present) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=True)
    names = PAPER_CAPABILITIES
    for ax, agent in zip(axes.flat, present):
        alloc = np.mean([r["allocations"] for r in records if r["agent"] == agent and r["task"] == task and r["budget_tokens"] == budget], axis=0)
        ax.stackplot(np.arange(1, alloc.shape[0] + 1), alloc.T, labels=names[: alloc.shape[1]])
        ax.set_title(agent, fontsize=9)
        ax.set_ylim(0, 1)
    for ax in axes.flat[len(present):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="upper left", bbox_to_anchor=(0, -0.15) if rows == 1 else (0, 1), ncol=2)
    fig.suptitle(f"allocation over steps ({task}, {budget / 1e6:g}M tokens, mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_profiles(records: list[dict[str, Any]], agents: Sequence[str], path: Path) -> Path:
    """Left: task utility over steps per agent; right: profile trajectory per capability for the first non-baseline agent."""
    plt = _pyplot()
    task, budget = _pick(records)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for agent in agents:
        sub = [r for r in records if r["agent"] == agent and r["task"] == task and r["budget_tokens"] == budget]
        if not sub:
            continue
        util = 100 * np.mean([[r["initial_utility"], *r["utilities"]] for r in sub], axis=0)
        left.plot(np.arange(util.size), util, label=agent, lw=2 if "bandit" in agent else 1)
    left.set_xlabel("step")
    left.set_ylabel("task utility (points)")
    left.set_title(f"utility trajectory ({task}, {budget / 1e6:g}M)")
    left.legend(fontsize=7)
    focus = next((a for a in agents if "bandit" in a), agents[0])
    sub = [r for r in records if r["agent"] == focus and r["task"] == task and r["budget_tokens"] == budget]
    if sub:
        prof = 100 * np.mean([[r["initial_profile"], *r["profiles"]] for r in sub], axis=0)
        for index in range(prof.shape[1]):
            right.plot(np.arange(prof.shape[0]), prof[:, index], label=PAPER_CAPABILITIES[index] if index < len(PAPER_CAPABILITIES) else str(index))
        right.set_title(f"profile trajectory of {focus}")
        right.set_xlabel("step")
        right.set_ylabel("measured score (points)")
        right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
