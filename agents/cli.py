"""The ``read-env`` command line: ``demo`` (the main job), ``run``, ``compare``, ``train``, ``agents``, ``log-episodes``, ``fit-world``.

Examples::

    read-env demo                       # the ReAD bandit and uniform on real distillation (ReAD-v0)
    read-env run --agent read_bandit --task math_word_problems --budget 20M --seed 0 --out runs/run
    read-env compare --agents all --tasks all --budgets 20M,150M --seeds 10 --out runs/compare --workers 2
    read-env compare --env-id ReAD-v0 --backend ray --address auto --gpus-per-episode 1 ...   # episodes on a Ray cluster
    read-env train --algo ppo --timesteps 100000 --out runs/ppo
    read-env agents
    read-env log-episodes --env-id ReAD-Mini-v0 --tasks math_word_problems --budgets 250k,1M --seeds 5 --out data/mini --workers 2
    read-env fit-world runs/ReAD-Mini-v0 -o world.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from read_env.registration import SURROGATE_ID, SURROGATE_V1_ID
from read_env.tasks import MULTI_CAPABILITY_TASKS, SINGLE_CAPABILITY_TASKS, TASKS


def parse_budget(text: str) -> int:
    """'20M' -> 20_000_000, '1.5B' -> 1_500_000_000, '500k' -> 500_000, '123' -> 123."""
    text = text.strip()
    scale = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}.get(text[-1].lower(), None)
    try:
        return int(round(float(text[:-1]) * scale)) if scale else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a token budget: {text!r} (examples: 20M, 150M, 500k)") from None


def parse_tasks(text: str) -> list[str]:
    groups = {"all": [*SINGLE_CAPABILITY_TASKS, *MULTI_CAPABILITY_TASKS], "single": list(SINGLE_CAPABILITY_TASKS), "multi": list(MULTI_CAPABILITY_TASKS)}
    out: list[str] = []
    for part in text.split(","):
        out += groups.get(part, [part])
    unknown = [t for t in out if t not in TASKS and t != "random"]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown tasks {unknown}; known: {sorted(TASKS)} or all/single/multi")
    return out


def parse_env_kwargs(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from agents.registry import make_agent
    from agents.harness.runner import run_episode
    from agents.harness.step_log import StepLog

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env_kwargs = parse_env_kwargs(args.env_kwarg)
    with StepLog(out / "history.jsonl", None if args.no_tensorboard else out / "tb", args.steps, f"{args.agent} on {args.task}") as log:

        def factory(setting):
            log.capabilities = list(setting.capabilities)
            return make_agent(args.agent, setting, seed=args.seed)

        episode, agent = run_episode(factory, args.env_id, args.task, args.budget, args.steps, args.seed, env_kwargs, on_step=log)
    if args.save_agent:
        agent.save(out / "agent.pkl")
    summary = {"agent": agent.name, "task": episode.task, "budget_tokens": episode.budget_tokens, "seed": episode.seed,
               "initial_utility": episode.initial_utility, "final_utility": episode.final_utility,
               "final_allocation": np.round(episode.steps[-1]["allocation"], 3).tolist(), **episode.extra}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from agents.harness.compare import CompareConfig, format_summary, run_compare
    from agents.registry import AGENTS, DEFAULT_AGENTS

    agents: list[str] = []
    for name in args.agents.split(","):
        agents += list(DEFAULT_AGENTS) if name == "all" else [name] if name else []
    agents = list(dict.fromkeys(agents))
    unknown = [a for a in agents if a not in AGENTS and not a.startswith(("ppo:", "sb3:", "ppo_jax:"))]
    if unknown:
        print(f"unknown agents {unknown}; known: {sorted(AGENTS)}, ppo:PATH or ppo_jax:PATH", file=sys.stderr)
        return 2
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.agent_option:
        name, _, rest = item.partition(".")
        overrides.setdefault(name, {}).update(parse_env_kwargs([rest]))
    config = CompareConfig(agents, args.tasks, args.budgets, seeds, args.env_id, parse_env_kwargs(args.env_kwarg), args.steps, args.out, args.workers, overrides,
                           args.backend, args.address, args.gpus_per_episode)
    tables = run_compare(config, progress=not args.quiet)
    print(format_summary(tables))
    print(f"\nwrote {args.out}/summary.csv, per_task.csv, results.md, utility.png, allocation.png, profile.png")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.algo == "ppo_jax":
        from agents.policies.ppo_jax import PPOConfig, train as train_jax

        config = PPOConfig(env_id=args.env_id, world=args.world, budgets=tuple(args.budgets), total_timesteps=args.timesteps, seed=args.seed)
        _, report = train_jax(config, args.out)
        print(f"saved {args.out}/model.npz: {report['steps']:,} steps in {report['train_s']:.1f} s ({report['steps_per_second']:,.0f} steps/s) "
              f"after {report['compile_s']:.1f} s compiling; mean return of the last update {report['episode_return'][-1]:.4f}")
        return 0
    from agents.policies.ppo import train

    train(args.algo, args.timesteps, args.seed, args.out, not args.no_tensorboard, args.checkpoint_every, progress=not args.quiet, env_id=args.env_id,
          world=args.world, budgets=args.budgets)
    print(f"saved {args.out}/model.zip (TensorBoard logs in {args.out}/tb)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from agents.demo import DemoConfig, run_demo

    defaults = DemoConfig()
    run_demo(DemoConfig(args.task, args.budget or defaults.budget_tokens, args.steps or defaults.num_steps, args.seed, tuple(args.agents.split(",")), device=args.device, out=args.out))
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    from agents.registry import AGENTS

    print("\n".join(sorted(AGENTS)) + "\nppo:PATH (a saved SB3 PPO model), sb3:ALGO:PATH, ppo_jax:PATH (a saved ppo_jax network)")
    return 0


def cmd_log_episodes(args: argparse.Namespace) -> int:
    from agents.harness.episode_log import LogConfig, log_episodes

    config = LogConfig(args.out, args.env_id, parse_env_kwargs(args.env_kwarg), args.tasks, args.budgets, list(range(args.seed_start, args.seed_start + args.seeds)),
                       [name for name in args.schedules.split(",") if name], args.steps, args.workers, args.backend, args.address, args.name)
    card = log_episodes(config, progress=not args.quiet)
    print(f"{card['episodes']} episodes in {args.out}/episodes.jsonl (data set {card['name']!r}, version {card['version']}); card: {args.out}/CARD.md")
    return 0


def cmd_fit_world(args: argparse.Namespace) -> int:
    from read_env.surrogate.fit_world import fit_world, load_episodes, write_world

    if args.model != "calibrated":
        from read_env.fitted.fit import fit_and_validate

        models = ["recency", "ensemble"] if args.model == "both" else [args.model]
        world, results = fit_and_validate(load_episodes(args.histories), models, args.holdout, args.output, args.report, seed=args.seed,
                                          data=" ".join(args.histories), refit_all=args.refit_all)
        def number(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f}"

        for name, result in results.items():
            print(f"{name}: held-out profile RMS {result['rms_points_all']:.2f} points (no change {result['no_change_rms_points_all']:.2f}), "
                  f"Spearman within groups {number(result['spearman'])}, pooled {number(result['spearman_pooled'])}, best in top 3 {number(result['best_in_top3'])}")
        print(f"wrote {args.output} ({world.kind}): gym.make('ReAD-Fitted-v0', world='{args.output}'); report in {world.fit['report']}")
        return 0
    world, report = fit_world(load_episodes(args.histories), args.holdout, args.path_terms)
    write_world(world, report, args.output)
    heldout = report["rmse_heldout_points"]
    print(f"fitted {len(report['train_episodes'])} episodes: RMS profile error {report['rmse_train_points']:.2f} points "
          f"(no-change prediction {report['no_change_rmse_train_points']:.2f}); "
          + (f"{len(report['heldout_episodes'])} held-out episodes: {heldout:.2f} (no change {report['no_change_rmse_heldout_points']:.2f})" if heldout is not None else "no held-out episode"))
    env_id = SURROGATE_V1_ID if args.path_terms else SURROGATE_ID
    print(f"wrote {args.output}: gym.make('{env_id}', world='{args.output}', budget_tokens={report['budget_tokens']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="read-env", description="Agents for budgeted capability distillation (ReAD).")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--env-id", default="ReAD-Surrogate-v0")
        p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE", help="extra environment argument (JSON value), repeatable")
        p.add_argument("--steps", type=int, default=20, help="decision steps per episode")

    demo = sub.add_parser("demo", help="the main job: the ReAD bandit and uniform on real distillation (ReAD-v0)")
    demo.add_argument("--task", default="math_word_problems")
    demo.add_argument("--budget", type=parse_budget, default=None, help="token budget (default: agents.demo.DemoConfig)")
    demo.add_argument("--steps", type=int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--agents", default="read_bandit,uniform")
    demo.add_argument("--device", default="auto")
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help="one agent on one environment and task")
    run.add_argument("--agent", default="read_bandit")
    run.add_argument("--task", default="math_word_problems")
    run.add_argument("--budget", type=parse_budget, default=20_000_000)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", default="runs/run")
    run.add_argument("--no-tensorboard", action="store_true")
    run.add_argument("--save-agent", action="store_true")
    common(run)
    run.set_defaults(func=cmd_run)

    cmp = sub.add_parser("compare", help="agents x tasks x budgets x seeds, with tables and plots (resumable)")
    cmp.add_argument("--agents", default="all", help="comma list; 'all' is every default agent (combine: all,read_bandit_code)")
    cmp.add_argument("--tasks", type=parse_tasks, default=parse_tasks("all"), help="comma list, or all/single/multi")
    cmp.add_argument("--budgets", type=lambda s: [parse_budget(x) for x in s.split(",")], default=[20_000_000, 150_000_000])
    cmp.add_argument("--seeds", type=int, default=10, help="number of seeds")
    cmp.add_argument("--seed-start", type=int, default=0)
    cmp.add_argument("--workers", type=int, default=1, help="local processes (backend local)")
    cmp.add_argument("--backend", choices=["local", "ray"], default="local", help="ray: each episode a Ray task (pip install 'read-env[ray]')")
    cmp.add_argument("--address", default=None, help="Ray cluster address, e.g. auto or ray://HOST:10001 (default: a local Ray)")
    cmp.add_argument("--gpus-per-episode", type=float, default=0.0, help="GPUs each Ray task reserves (ReAD-v0 on GPUs: 1)")
    cmp.add_argument("--out", default="runs/compare")
    cmp.add_argument("--agent-option", action="append", default=[], metavar="AGENT.KEY=VALUE", help="agent hyperparameter (JSON value), e.g. read_bandit.warmup_steps=2; repeatable")
    cmp.add_argument("--quiet", action="store_true")
    common(cmp)
    cmp.set_defaults(func=cmd_compare)

    tr = sub.add_parser("train", help="train PPO (or another SB3 algorithm, or ppo_jax: PPO compiled with JAX) on the surrogate")
    tr.add_argument("--algo", default="ppo", help="an SB3 algorithm (ppo, sac, ...) or ppo_jax (agents.policies.ppo_jax; pip install 'read-env[jax]')")
    tr.add_argument("--env-id", default="ReAD-Surrogate-v0", help="the surrogate to train on: ReAD-Surrogate-v0 or -v1")
    tr.add_argument("--world", default="random", help="'random' (a new world every episode), 'paper', or a world .json (e.g. from fit-world)")
    tr.add_argument("--budgets", type=lambda s: [parse_budget(x) for x in s.split(",")], default=[20_000_000, 150_000_000],
                    help="episode budgets, spread over the parallel environments")
    tr.add_argument("--timesteps", type=int, default=100_000)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", default="runs/ppo")
    tr.add_argument("--checkpoint-every", type=int, default=20_000)
    tr.add_argument("--no-tensorboard", action="store_true")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=cmd_train)

    log = sub.add_parser("log-episodes", help="log real episodes under broad schedules, as a data set to fit a world to (resumable)")
    log.add_argument("--schedules", default="random,schedule_mixture,schedule_blocks,schedule_phases,uniform,task_static",
                     help="comma list of schedule families and agent names (agents.harness.episode_log)")
    log.add_argument("--tasks", type=parse_tasks, default=["math_word_problems"], help="comma list, or all/single/multi")
    log.add_argument("--budgets", type=lambda s: [parse_budget(x) for x in s.split(",")], default=[250_000, 1_000_000])
    log.add_argument("--seeds", type=int, default=5, help="number of seeds (schedules drawn per family)")
    log.add_argument("--seed-start", type=int, default=0)
    log.add_argument("--workers", type=int, default=1, help="local processes (backend local)")
    log.add_argument("--backend", choices=["local", "ray"], default="local")
    log.add_argument("--address", default=None, help="Ray cluster address (backend ray)")
    log.add_argument("--name", default="", help="the data set's name on its card (default: the folder's name)")
    log.add_argument("--out", required=True, help="the data set's folder (episodes.jsonl, card.json, CARD.md)")
    log.add_argument("--quiet", action="store_true")
    common(log)
    log.set_defaults(func=cmd_log_episodes, env_id="ReAD-Mini-v0")

    fit = sub.add_parser("fit-world", help="fit the surrogate's world parameters to recorded histories or trajectories")
    fit.add_argument("histories", nargs="+", help="run folders, episode folders, history.jsonl or trajectory .json files")
    fit.add_argument("-o", "--output", default="world.json")
    fit.add_argument("--holdout", type=float, default=0.2, help="share of episodes held out to report the fit error (every 1/holdout-th)")
    fit.add_argument("--path-terms", action="store_true", help="also fit ReAD-Surrogate-v1's prerequisite scale and repair (a PathWorld)")
    fit.add_argument("--model", choices=["calibrated", "recency", "ensemble", "both"], default="calibrated",
                     help="calibrated: ReAD-Surrogate-v0/v1's world (default); recency, ensemble or both (the better on held-out schedules is written): "
                          "a ReAD-Fitted-v0 world, validated on held-out schedules (needs torch)")
    fit.add_argument("--report", default=None, help="folder of the validation report (default: next to the output, OUTPUT_report)")
    fit.add_argument("--seed", type=int, default=0, help="seeds the fit of recency/ensemble models")
    fit.add_argument("--refit-all", action="store_true", help="recency/ensemble: after validation, fit the chosen model on every episode and write that")
    fit.set_defaults(func=cmd_fit_world)

    ag = sub.add_parser("agents", help="list the agent names")
    ag.set_defaults(func=cmd_agents)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
