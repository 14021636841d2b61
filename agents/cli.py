"""The ``read-env`` command line: ``demo`` (the main job), ``run``, ``compare``, ``train``, ``agents``, ``log-episodes``, ``fit-world``,
``estimate``, ``pool``.

Examples (``run``, ``compare`` and ``train`` default to ``ReAD-Surrogate-v2``, ``read_env.DEFAULT_ENV_ID``; without
``--budget(s)`` or ``--steps`` a command runs the environment's own budget and steps, and says which)::

    read-env demo                       # the ReAD bandit and uniform on real distillation (ReAD-v0)
    read-env run --agent read_bandit --task math_word_problems --budget 20M --seed 0 --out runs/run
    read-env compare --agents all --tasks all --budgets 20M,150M --seeds 10 --workers 2   # into runs/compare/ENV_ID
    read-env compare --env-id ReAD-v0 --backend ray --address auto --gpus-per-episode 1 ...   # episodes on a Ray cluster
    read-env compare --env-id ReAD-v0 --workers 4 --devices cuda:0,cuda:1 ...   # local workers on two GPUs, round-robin
    read-env train --algo ppo --timesteps 100000 --out runs/ppo
    read-env agents
    read-env log-episodes --env-id ReAD-Mini-v0 --tasks math_word_problems --budgets 250k,1M --seeds 5 --out data/mini --workers 2
    read-env fit-world runs/ReAD-Mini-v0                 # world.json, for ReAD-Surrogate-v0 (--model ensemble: fitted_world.json)
    read-env estimate --teacher qwen2.5-7b --student qwen2.5-0.5b --budget 20M,150M --engine vllm   # predicted hours, inputs printed
    read-env pool build pools/smollm2 --per-bucket 64    # the teacher's answers, shared by ReAD-v0 episodes (teacher_pool=PATH)

Utility is printed in points (100 x utility, 0-100). ``run``, ``compare`` and ``train`` end with a short table or
line; ``--json`` prints their full record instead, for scripts. A mistake in the input (an unknown task, agent
or environment id, a bad budget or option value, a missing file) ends a command with one line,
``read-env COMMAND: error: ...``, and exit status 2, before anything is written. Ctrl-C ends a command with one
line saying what was kept (exit status 130): ``run`` and ``demo`` keep their run folder's finished steps,
``compare`` and ``log-episodes`` their finished episodes (rerun the command to continue), ``train`` saves the
policy trained so far.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from read_env.registration import DEFAULT_ENV_ID, ENV_IDS, MINI_V2_ID, episode_defaults
from read_env.tasks import MULTI_CAPABILITY_TASKS, RANDOM_TASK, SINGLE_CAPABILITY_TASKS, TASKS

if TYPE_CHECKING:
    from agents.harness.compare import CompareConfig


CALIBRATED_WORLD_FILE, FITTED_WORLD_FILE = "world.json", "fitted_world.json"
"""``fit-world``'s default outputs: a calibrated world (ReAD-Surrogate-v0/v1/v2) and a ReAD-Fitted world."""
BUDGET_FORMAT = "tokens: an integer, or a number with k (thousand), M (million) or B (billion), e.g. 500k, 20M, 150M, 1.5B"
OWN = "None: the environment's own (read_env.episode_defaults), said before the command starts"


class UsageError(Exception):
    """A mistake in the user's input: :func:`main` prints it on one line (``read-env COMMAND: error: ...``) and
    returns exit status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block) pointing to ``--help``."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def unknown(kind: str, value: str, known: Sequence[str]) -> str:
    """``unknown KIND 'VALUE' (did you mean 'CLOSE'?); known: ...``: the message for a name not among ``known``."""
    close = difflib.get_close_matches(value, known, n=1)
    return f"unknown {kind} {value!r}" + (f" (did you mean {close[0]!r}?)" if close else "") + f"; known: {', '.join(known)}"


def parse_budget(text: str) -> int:
    """'20M' -> 20_000_000, '1.5B' -> 1_500_000_000, '500k' -> 500_000, '123' -> 123; anything but a positive
    number of tokens raises ``ArgumentTypeError`` naming the text."""
    text = text.strip()
    scale = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}.get(text[-1:].lower(), None)
    try:
        tokens = int(round(float(text[:-1]) * scale)) if scale else int(text)
    except (ValueError, OverflowError):
        tokens = 0
    if tokens <= 0:
        raise argparse.ArgumentTypeError(f"not a token budget: {text!r} (a positive number of tokens, e.g. 20M, 150M, 500k)")
    return tokens


def parse_task(text: str) -> str:
    """A task name (``read_env.tasks.TASKS``) or ``random``."""
    if text not in TASKS and text != RANDOM_TASK:
        raise argparse.ArgumentTypeError(unknown("task", text, [*TASKS, RANDOM_TASK]))
    return text


def parse_budgets(text: str) -> list[int]:
    """'20M,150M' -> [20_000_000, 150_000_000]."""
    return [parse_budget(part) for part in text.split(",")]


def format_budget(tokens: int) -> str:
    """20_000_000 -> '20M', 80_000 -> '80k', 1_500_000_000 -> '1.5B', 123 -> '123' (what :func:`parse_budget` reads back)."""
    for suffix, scale in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if tokens >= scale and tokens * 1000 % scale == 0:
            return f"{tokens / scale:.3f}".rstrip("0").rstrip(".") + suffix
    return str(tokens)


def episode_plan(args: argparse.Namespace, budgets: list[int] | None, env_kwargs: list[dict[str, Any]]) -> tuple[list[int], int, str]:
    """The budgets (tokens) and steps per episode a command runs, and the line that says so (printed on stderr once the
    inputs are checked): ``budgets`` and ``args.steps`` where given, else the environment's own (made with each of
    ``env_kwargs``, which must agree)."""
    steps = args.steps
    defaulted = [name for name, value in (("budget", budgets), ("steps", steps)) if value is None]
    if defaulted:
        with user_input(args.env_id):
            owns = {episode_defaults(args.env_id, kwargs) for kwargs in env_kwargs}
        if len(owns) > 1:
            raise UsageError(f"the worlds have different budgets and steps of their own {sorted(owns)}: "
                             "give --budgets and --steps")
        [(own_budget, own_steps)] = owns
        budgets = [own_budget] if budgets is None else budgets
        steps = own_steps if steps is None else steps
    said = f"budget{'s' * (len(budgets) > 1)} {', '.join(map(format_budget, budgets))} tokens, {steps} steps per episode"
    own = f" ({' and '.join(defaulted)}: the environment's own)" if defaulted else ""
    return budgets, steps, f"{args.command} on {args.env_id}: {said}{own}"


def parse_tasks(text: str) -> list[str]:
    groups = {"all": [*SINGLE_CAPABILITY_TASKS, *MULTI_CAPABILITY_TASKS], "single": list(SINGLE_CAPABILITY_TASKS), "multi": list(MULTI_CAPABILITY_TASKS)}
    out: list[str] = []
    for part in text.split(","):
        if part not in groups and part not in TASKS and part != RANDOM_TASK:
            raise argparse.ArgumentTypeError(unknown("task", part, [*TASKS, RANDOM_TASK, *groups]))
        out += groups.get(part, [part])
    return out


def task_count(text: str) -> int:
    """A count of tasks: a positive integer, or a comma list of :func:`parse_tasks`."""
    return positive_int(text) if text.isdigit() else len(parse_tasks(text))


def parse_capabilities(text: str) -> list[str]:
    """A comma list of capability names, or ``all``."""
    from read_env.capabilities import PAPER_CAPABILITIES

    names = list(PAPER_CAPABILITIES) if text == "all" else [name.strip() for name in text.split(",")]
    for name in names:
        if name not in PAPER_CAPABILITIES:
            raise argparse.ArgumentTypeError(unknown("capability", name, PAPER_CAPABILITIES))
    return names


def positive_int(text: str) -> int:
    """An integer >= 1 (a count of seeds, workers or timesteps)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return value


DEVICE_NAME = re.compile(r"cpu|mps|cuda(:\d+)?")


def parse_devices(text: str) -> list[str]:
    """A comma list of distinct torch device names (``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    devices = text.split(",")
    for device in devices:
        if not DEVICE_NAME.fullmatch(device):
            raise argparse.ArgumentTypeError(f"not a torch device: {device!r} (use cpu, cuda, cuda:N or mps)")
    if len(set(devices)) != len(devices):
        raise argparse.ArgumentTypeError(f"a device is named twice in {text!r}")
    return devices


def parse_env_kwargs(items: list[str], flag: str = "--env-kwarg") -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict (VALUE parsed as JSON where it is JSON, else kept as text)."""
    out = {}
    for item in items or []:
        key, equals, value = item.partition("=")
        if not key.strip() or not equals:
            raise UsageError(f"{flag} {item!r} is not KEY=VALUE (e.g. noise=false, world=\"paper\")")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


@contextmanager
def user_input(what: str = "") -> Iterator[None]:
    """Turn the ``ValueError``, ``TypeError`` or ``FileNotFoundError`` of a check of the user's input into a
    :class:`UsageError` (naming ``what`` when given)."""
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise UsageError(f"{what}: {error}" if what else str(error)) from None


def check_env(env_id: str, tasks: Sequence[str | None], budgets: Sequence[int], num_steps: int, env_kwargs: dict[str, Any]) -> None:
    """Build (and close) ``env_id`` for the first task at each budget and for each task at the first budget, so a
    bad keyword or value is a :class:`UsageError` before anything is written."""
    from agents.base import make_env

    for task, budget in dict.fromkeys([*((tasks[0], budget) for budget in budgets), *((task, budgets[0]) for task in tasks)]):
        named = [*([f"task {task}"] if task else []), f"budget {budget:,} tokens", f"{num_steps} steps"]
        setting = ", ".join([*named, *(f"{key}={value!r}" for key, value in env_kwargs.items())])
        try:
            with warnings.catch_warnings():  # the run itself warns of an out-of-date id
                warnings.simplefilter("ignore")
                make_env(env_id, "simplex", task, budget, num_steps, env_kwargs).close()
        except (ValueError, TypeError, FileNotFoundError) as error:  # gymnasium adds where a TypeError came from: the setting says it
            raise UsageError(f"{env_id} ({setting}): " + str(error).split(" was raised from the environment creator")[0]) from None


def check_agents(names: Sequence[str]) -> None:
    """Every name is a registered agent or a saved policy whose file exists (``ppo:PATH``, ``sb3:ALGO:PATH``, ``ppo_jax:PATH``)."""
    from agents.registry import AGENTS, MODEL_PREFIXES, is_known_agent

    for name in names:
        if not is_known_agent(name):
            raise UsageError(unknown("agent", name, sorted(AGENTS)) + ", ppo:PATH, sb3:ALGO:PATH or ppo_jax:PATH")
        if name.startswith(MODEL_PREFIXES):
            path = name.split(":", 2)[-1] if name.startswith("sb3:") else name.partition(":")[2]
            if not (Path(path).is_file() or Path(path + ".zip").is_file()):
                raise UsageError(f"agent {name!r}: no saved policy at {path!r}")


@contextmanager
def removed_unless_kept(args: argparse.Namespace, folder: Path | None, kept: Path) -> Iterator[None]:
    """Remove ``folder`` (which this command made; None: none) if the command fails before ``kept`` holds
    anything: a failed command leaves no empty folder behind."""
    try:
        yield
    except BaseException:
        if folder is not None and folder.is_dir() and not (kept.is_file() and kept.stat().st_size):
            shutil.rmtree(folder)
            args.kept = f"nothing (nothing had finished; {folder} is removed)"
        raise


def first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet; None if ``path`` exists."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout, for scripts (NaN and infinities as null, which every JSON reader takes)."""
    print(json.dumps(json.loads(json.dumps(data, default=str), parse_constant=lambda _: None), indent=2))


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from agents.demo import episode_table
    from agents.registry import make_agent
    from agents.harness.runner import run_episode
    from agents.harness.step_log import StepLog, fresh_run_dir

    env_kwargs = parse_env_kwargs(args.env_kwarg)
    check_agents([args.agent])
    [budget], steps, plan = episode_plan(args, None if args.budget is None else [args.budget], [env_kwargs])
    check_env(args.env_id, [args.task], [budget], steps, env_kwargs)
    print(plan, file=sys.stderr)  # stderr: stdout is the result alone (--json)
    made = first_missing(Path(args.out))
    out = fresh_run_dir(Path(args.out))
    args.kept = f"{out} (history.jsonl of the finished steps)"
    log_args = (out / "history.jsonl", None if args.no_tensorboard else out / "tb", steps, f"{args.agent} on {args.task}")
    with removed_unless_kept(args, made or out, out / "history.jsonl"), StepLog(*log_args) as log:

        def factory(setting):
            log.capabilities = list(setting.capabilities)
            return make_agent(args.agent, setting, seed=args.seed)

        episode, agent = run_episode(factory, args.env_id, args.task, budget, steps, args.seed, env_kwargs, on_step=log)
    if args.save_agent:
        agent.save(out / "agent.npz")
    summary = {"agent": agent.name, "task": episode.task, "budget_tokens": episode.budget_tokens, "seed": episode.seed,
               "initial_utility_points": round(100 * episode.initial_utility, 4), "final_utility_points": round(100 * episode.final_utility, 4),
               "final_allocation": np.round(episode.steps[-1]["allocation"], 3).tolist(), **episode.extra}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print_json(summary)
        return 0
    print(f"{agent.name} on {args.env_id}, task {episode.task}, seed {episode.seed}:")
    print(episode_table(agent.setting.capabilities, {agent.name: episode}))
    written = ["history.jsonl", "summary.json", *([] if args.no_tensorboard else ["tb/"]), *(["agent.npz"] if args.save_agent else [])]
    print(f"\nwrote {out}: {', '.join(written)}")
    return 0


def agent_names(text: str) -> list[str]:
    """A comma list of agent names, ``all`` standing for every default agent; each checked (:func:`check_agents`)."""
    from agents.registry import DEFAULT_AGENTS

    agents: list[str] = []
    for name in text.split(","):
        agents += list(DEFAULT_AGENTS) if name == "all" else [name] if name else []
    agents = list(dict.fromkeys(agents))
    check_agents(agents)
    return agents


def cmd_compare(args: argparse.Namespace) -> int:
    from agents.harness.compare import CompareConfig, check_devices, format_summary, run_compare

    agents = agent_names(args.agents)
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    overrides: dict[str, dict[str, Any]] = {}
    for item in args.agent_option:
        name, _, rest = item.partition(".")
        if name not in agents:
            raise UsageError(f"--agent-option {item!r} is for agent {name!r}, which is not among --agents {agents}")
        overrides.setdefault(name, {}).update(parse_env_kwargs([rest], "--agent-option"))
    out = args.out.replace("{env_id}", args.env_id)
    env_kwargs = parse_env_kwargs(args.env_kwarg)
    budgets, steps, plan = episode_plan(args, args.budgets, [env_kwargs])
    config = CompareConfig(agents, args.tasks, budgets, seeds, args.env_id, env_kwargs, steps, out, args.workers, overrides,
                           args.backend, args.address, args.gpus_per_episode, args.devices)
    with user_input("--devices"):
        if config.devices is not None:
            check_devices(config)
    tables = sweep_episodes(args, config, plan, lambda: run_compare(config, progress=not args.quiet))
    if args.json:
        print_json(tables)
        return 0
    print("utility, utility_sd, diff_vs_uniform, ci95, regret, offtarget_change: points (100 x utility)")
    print(format_summary(tables))
    print(f"\nwrote {out}/summary.csv, per_task.csv, results.md, utility.png, allocation.png, profile.png")
    return 0


def sweep_episodes(args: argparse.Namespace, config: CompareConfig, plan: str, run: Callable[[], Any]) -> Any:
    """Check the sweep of ``config``, say its ``plan`` (stderr) and ``run`` it (``compare``'s or ``log-episodes``') into
    its folder, which a failure before the first finished episode removes again; Ctrl-C then names the episodes kept."""
    from agents.harness.compare import EPISODES_FILE, check_out_dir, load_records

    check_env(config.env_id, config.tasks, config.budgets, config.num_steps, dict(config.env_kwargs))
    with user_input("--out"):
        check_out_dir(config)
    print(plan, file=sys.stderr)
    out = Path(config.out_dir)
    args.kept = lambda: f"{len(load_records(out))} finished episodes in {out / EPISODES_FILE} (rerun the same command to continue)"
    with removed_unless_kept(args, first_missing(out), out / EPISODES_FILE):
        return run()


def cmd_train(args: argparse.Namespace) -> int:
    env_kwargs = parse_env_kwargs(args.env_kwarg)
    if args.algo == "ppo_jax" and env_kwargs:
        raise UsageError("train --algo ppo_jax takes no --env-kwarg (its environments are read_env.jax's)")
    worlds = [{"world": world, **env_kwargs} for world in args.world.split(",")]
    budgets, steps, plan = episode_plan(args, args.budgets, worlds)
    for world in worlds:
        check_env(args.env_id, [None], budgets, steps, world)
    print(plan, file=sys.stderr)
    if args.algo == "ppo_jax":
        from agents.policies.ppo_jax import PPOConfig, train as train_jax

        with user_input():
            config = PPOConfig(env_id=args.env_id, world=args.world, budgets=tuple(budgets), num_steps=steps, total_timesteps=args.timesteps,
                               seed=args.seed)
        _, report = train_jax(config, args.out)
        report = {"model": f"{args.out}/model.npz", **report}
        last = f"after {report['compile_s']:.1f} s compiling; mean return of the last update {report['episode_return'][-1]:.4f}"
    else:
        import stable_baselines3

        from agents.policies.ppo import train

        if not hasattr(stable_baselines3, args.algo.upper()):
            algorithms = sorted(name.lower() for name in stable_baselines3.__all__ if name.isupper())
            raise UsageError(unknown("algorithm", args.algo, ["ppo_jax", *algorithms]))
        args.kept = f"{args.out}/model.zip (the policy trained until the interruption)"
        start = time.perf_counter()
        model = train(args.algo, args.timesteps, args.seed, args.out, not args.no_tensorboard, args.checkpoint_every,
                      progress=not args.quiet, env_id=args.env_id, world=args.world, budgets=budgets, num_steps=steps,
                      env_kwargs=env_kwargs)
        seconds = time.perf_counter() - start
        returns = [float(episode["r"]) for episode in model.ep_info_buffer]
        report = {"model": f"{args.out}/model.zip", "algo": args.algo, "steps": int(model.num_timesteps), "train_s": seconds,
                  "steps_per_second": model.num_timesteps / seconds, "last_episode_returns": returns,
                  "tensorboard": None if args.no_tensorboard else f"{args.out}/tb"}
        last = f"mean return of the last {len(returns)} episodes {sum(returns) / max(1, len(returns)):.4f}" + (
            "" if args.no_tensorboard else f"; TensorBoard logs in {args.out}/tb")
    if args.json:
        print_json(report)
    else:
        rate = f"{report['steps']:,} steps in {report['train_s']:.1f} s ({report['steps_per_second']:,.0f} steps/s)"
        print(f"saved {report['model']}: {rate} {last}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from agents.demo import DemoConfig, run_demo

    check_agents(args.agents.split(","))
    args.kept = f"the newest run-NNN folder of {args.out} (histories of the finished steps)"
    run_demo(DemoConfig(args.task, args.budget, args.steps, args.seed, tuple(args.agents.split(",")), device=args.device, out=args.out,
                     lora=not args.full_finetune, lr=args.lr))
    return 0


def cmd_pool(args: argparse.Namespace) -> int:
    from read_env.distill.config import DistillerConfig
    from read_env.distill.pool import PoolError, build_pool

    if args.action == "show":
        card = Path(args.path) / "card.json"
        if not card.is_file():
            raise UsageError(f"no teacher pool at {args.path} (card.json missing)")
        print(card.read_text(), end="")
        return 0
    options = parse_env_kwargs(args.option, "--option")
    options.update({key: value for key, value in (("teacher", args.teacher), ("teacher_engine", args.teacher_engine),
                                                   ("teacher_url", args.teacher_url)) if value is not None})
    try:
        config = DistillerConfig.from_dict(options)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from error
    args.kept = f"the answers of {args.path} written so far (rerun the command to continue)"
    try:
        card = build_pool(args.path, config, args.capabilities, args.per_bucket, args.device, args.batch_size, progress=not args.quiet)
    except PoolError as error:
        raise UsageError(str(error)) from error
    build = card["builds"][-1]
    print(f"{args.path}: {card['rows']} answers ({card['generated_tokens']:,} teacher tokens); this build: {build['prompts']} answers, "
          f"{build['generated_tokens']:,} tokens in {build['seconds']:.1f} s ({build['tokens_per_s'] or 0:,.0f} tokens/s)")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    from agents.registry import AGENTS

    print("\n".join(sorted(AGENTS)) + "\nppo:PATH (a saved SB3 PPO model), sb3:ALGO:PATH, ppo_jax:PATH (a saved ppo_jax network)")
    return 0


def cmd_log_episodes(args: argparse.Namespace) -> int:
    from agents.harness.episode_log import LogConfig, compare_config, log_episodes

    env_kwargs = parse_env_kwargs(args.env_kwarg)
    budgets, steps, plan = episode_plan(args, args.budgets, [env_kwargs])
    config = LogConfig(args.out, args.env_id, env_kwargs, args.tasks, budgets, list(range(args.seed_start, args.seed_start + args.seeds)),
                       [name for name in args.schedules.split(",") if name], steps, args.workers, args.backend, args.address, args.name)
    check_agents(config.schedules)
    with user_input():
        compare = compare_config(config)
    card = sweep_episodes(args, compare, plan, lambda: log_episodes(config, progress=not args.quiet))
    print(f"{card['episodes']} episodes in {args.out}/episodes.jsonl (data set {card['name']!r}, version {card['version']}); card: {args.out}/CARD.md")
    return 0


def cmd_fit_world(args: argparse.Namespace) -> int:
    from read_env.episodes import load_episodes
    from read_env.fit.calibrated import calibrated_env_id, fit_world, write_world

    with user_input("histories"):
        episodes = load_episodes(args.histories)
    if args.model != "calibrated":
        from read_env.fit.validate import fit_and_validate, split_by_schedule

        output = args.output or FITTED_WORLD_FILE
        with user_input("--holdout"):
            split_by_schedule(episodes, args.holdout)
        models = ["recency", "ensemble"] if args.model == "both" else [args.model]
        world, results = fit_and_validate(episodes, models, args.holdout, output, args.report, seed=args.seed,
                                          data=" ".join(args.histories), refit_all=args.refit_all)

        def number(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2f}"

        for name, result in results.items():
            print(f"{name}: held-out profile RMS {result['rms_points_all']:.2f} points (no change {result['no_change_rms_points_all']:.2f}), "
                  f"Spearman within groups {number(result['spearman'])}, pooled {number(result['spearman_pooled'])}, best in top 3 {number(result['best_in_top3'])}")
        print(f"wrote {output} ({world.kind}): gym.make('{world.env_id}', world='{output}'); report in {world.fit['report']}")
        return 0
    output = args.output or CALIBRATED_WORLD_FILE
    with user_input("--holdout"):
        world, report = fit_world(episodes, args.holdout, args.path_terms)
    write_world(world, report, output)
    heldout = report["rmse_heldout_points"]
    print(f"fitted {len(report['train_episodes'])} episodes: RMS profile error {report['rmse_train_points']:.2f} points "
          f"(no-change prediction {report['no_change_rmse_train_points']:.2f}); "
          + (f"{len(report['heldout_episodes'])} held-out episodes: {heldout:.2f} (no change {report['no_change_rmse_heldout_points']:.2f})" if heldout is not None else "no held-out episode"))
    print(f"wrote {output}: gym.make('{calibrated_env_id(world)}', world='{output}', budget_tokens={report['budget_tokens']})")
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from read_env.distill.cost import HARDWARE, PHASES, Workload, estimate, format_estimate, format_seconds, load_calibration, model_shape

    agents = int(args.agents) if args.agents.isdigit() else len(agent_names(args.agents))
    with user_input():
        teacher, student = model_shape(args.teacher), model_shape(args.student)
        if args.hardware not in HARDWARE:
            raise ValueError(unknown("hardware", args.hardware, list(HARDWARE)))
        hardware, efficiency, basis = HARDWARE[args.hardware], {}, {}
        if args.calibration:
            hardware, efficiency, source = load_calibration(args.calibration, args.engine)
            basis = dict.fromkeys(efficiency, source)
        for phase, value in parse_env_kwargs(args.efficiency, "--efficiency").items():
            if phase not in PHASES or not isinstance(value, (int, float)):
                raise ValueError(f"--efficiency {phase}={value!r}: expected PHASE=NUMBER with PHASE one of {', '.join(PHASES)}")
            efficiency[phase], basis[phase] = float(value), "given"
        episodes = agents * args.tasks * args.seeds
        results = [estimate(teacher, student, hardware, Workload(budget, args.steps, pooled=not args.no_pool, pool_tokens=args.pool_tokens),
                            args.engine, efficiency, episodes, args.devices, args.concurrency) for budget in args.budget]
    if args.json:
        print_json([vars(result) for result in results])
        return 0
    print(f"estimate: teacher {teacher.name} -> student {student.name}, engine {args.engine}, {hardware.name}; "
          f"sweep of {agents} agents x {args.tasks} tasks x {args.seeds} seeds")
    for budget, result in zip(args.budget, results):
        print(f"\n== budget {format_budget(budget)}: pool build {format_seconds(result.pool_seconds)}, "
              f"episode {format_seconds(result.episode_seconds)}, sweep {format_seconds(result.sweep_seconds)}")
        print(format_estimate(result, basis))
    return 0


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help (but None, which the help explains); descriptions keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from agents.demo import DemoConfig

    parser = Parser(prog="read-env", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)

    def sweep(p: argparse.ArgumentParser, tasks: str, seeds: int, seeds_help: str) -> None:
        """The options of a sweep of episodes (tasks x budgets x seeds) on local processes or Ray."""
        p.add_argument("--tasks", type=parse_tasks, default=tasks, help="comma list of task names, or all/single/multi")
        p.add_argument("--budgets", type=parse_budgets, default=None, help=f"comma list of episode budgets in {BUDGET_FORMAT}; {OWN}")
        p.add_argument("--seeds", type=positive_int, default=seeds, help=seeds_help)
        p.add_argument("--seed-start", type=int, default=0, help="first seed")
        p.add_argument("--workers", type=positive_int, default=1, help="local processes (backend local)")
        p.add_argument("--backend", choices=["local", "ray"], default="local",
                       help="ray: episodes on Ray actors (pip install 'read-env[ray]')")
        p.add_argument("--address", default=None, help="Ray cluster address, e.g. auto or ray://HOST:10001; None starts a local Ray")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--env-id", default=DEFAULT_ENV_ID, help=f"environment id: {', '.join(ENV_IDS)}")
        p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE", help="extra environment argument (JSON value), repeatable")
        p.add_argument("--steps", type=positive_int, default=None, help=f"decision steps per episode; {OWN}")

    defaults = DemoConfig()
    demo = command("demo", "the main job: the ReAD bandit and uniform on real distillation (ReAD-v0); about 5 minutes on 2 CPU cores")
    demo.add_argument("--task", type=parse_task, default=defaults.task, help="task whose utility is measured (see read_env/tasks.py)")
    demo.add_argument("--budget", type=parse_budget, default=defaults.budget_tokens, help=f"episode budget in {BUDGET_FORMAT}")
    demo.add_argument("--steps", type=int, default=defaults.num_steps, help="decision steps per episode")
    demo.add_argument("--seed", type=int, default=defaults.seed, help="seed of every agent's episode")
    demo.add_argument("--agents", default=",".join(defaults.agents), help="comma list of agent names (read-env agents)")
    demo.add_argument("--device", default=defaults.device, help="torch device: auto (GPU when present), cpu, cuda, ...")
    demo.add_argument("--out", default=defaults.out, help="parent folder; each run writes a fresh OUT/run-NNN")
    demo.add_argument("--full-finetune", action="store_true", help="train all weights instead of LoRA adapters (checkpoints of ~600 MB instead of a few MB)")
    demo.add_argument("--lr", type=float, default=None, help="learning rate (default: 1e-3 with LoRA, 2e-5 with --full-finetune)")
    demo.set_defaults(func=cmd_demo)

    run = command("run", "one agent on one environment and task: JSON-lines history, TensorBoard logs, summary.json")
    run.add_argument("--agent", default="read_bandit", help="agent name (read-env agents), ppo:PATH or sb3:ALGO:PATH")
    run.add_argument("--task", type=parse_task, default="math_word_problems", help="task name (see read_env/tasks.py) or random")
    run.add_argument("--budget", type=parse_budget, default=None, help=f"episode budget in {BUDGET_FORMAT}; {OWN}")
    run.add_argument("--seed", type=int, default=0, help="seed of the episode and the agent")
    run.add_argument("--out", default="runs/run", help="parent folder; each run writes a fresh OUT/run-NNN")
    run.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard logs")
    run.add_argument("--save-agent", action="store_true", help="also save the agent after the episode (agent.npz; agents.load_agent reads it)")
    run.add_argument("--json", action="store_true", help="print the episode's whole record (summary.json) as JSON instead of the table")
    common(run)
    run.set_defaults(func=cmd_run)

    cmp = command("compare", "agents x tasks x budgets x seeds, with tables and plots (resumable: rerun to continue)")
    cmp.add_argument("--agents", default="all", help="comma list; 'all' is every default agent (combine: all,read_bandit_code)")
    sweep(cmp, tasks="all", seeds=10, seeds_help="number of seeds")
    cmp.add_argument("--gpus-per-episode", type=float, default=0.0, help="GPUs each Ray actor reserves (ReAD-v0 on GPUs: 1)")
    cmp.add_argument("--devices", type=parse_devices, default=None, metavar="DEV,DEV,...",
                     help="torch devices of the local workers, round-robin (e.g. cuda:0,cuda:1 with --workers 4); ReAD-v0 only")
    cmp.add_argument("--out", default="runs/compare/{env_id}", help="output folder (episodes.jsonl, tables, plots), one per "
                     "environment set-up; rerunning continues it; {env_id} is replaced by --env-id")
    cmp.add_argument("--agent-option", action="append", default=[], metavar="AGENT.KEY=VALUE", help="agent hyperparameter (JSON value), e.g. read_bandit.warmup_steps=2; repeatable")
    cmp.add_argument("--quiet", action="store_true", help="no progress bar")
    cmp.add_argument("--json", action="store_true", help="print the tables (summary and per task) as JSON instead of the summary table")
    common(cmp)
    cmp.set_defaults(func=cmd_compare)

    tr = command("train", "train PPO (or another SB3 algorithm, or ppo_jax: PPO compiled with JAX) on the surrogate")
    tr.add_argument("--algo", default="ppo", help="a Stable-Baselines3 algorithm name (ppo, sac, a2c, ...) or ppo_jax (agents.policies.ppo_jax; pip install 'read-env[jax]')")
    tr.add_argument("--env-id", default=DEFAULT_ENV_ID,
                    help="the simulated environment to train on: ReAD-Surrogate-v2, -v1 or -v0, ReAD-Fitted-v1 or -v0 "
                         "(ppo_jax: the surrogates, read_env.jax's forms)")
    tr.add_argument("--world", default="random", help="'random' (a new world every episode), 'paper', a world .json (e.g. from fit-world), "
                    "a fitted environment's shipped world (mini_v1; mini_v1_students: a prior over three students' worlds, one drawn "
                    "per episode), or a comma list of .json worlds spread evenly over the parallel environments")
    tr.add_argument("--budgets", type=parse_budgets, default=None,
                    help=f"comma list of episode budgets, spread over the parallel environments, in {BUDGET_FORMAT}; {OWN}")
    tr.add_argument("--timesteps", type=positive_int, default=100_000, help="environment steps to train for")
    tr.add_argument("--seed", type=int, default=0, help="seed of the algorithm and the environments")
    tr.add_argument("--out", default="runs/ppo", help="output folder (model.zip, checkpoints/, tb/)")
    tr.add_argument("--checkpoint-every", type=int, default=20_000, help="save a checkpoint every this many steps (0: none)")
    tr.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard logs")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.add_argument("--json", action="store_true", help="print the training report as JSON instead of the summary line")
    tr.add_argument("--steps", type=positive_int, default=None, help=f"decision steps per episode; {OWN}")
    tr.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment argument (JSON value), repeatable; SB3 algorithms (e.g. uncertainty_penalty=1 on ReAD-Fitted-v1)")
    tr.set_defaults(func=cmd_train)

    log = command("log-episodes", "log real episodes under broad schedules, as a data set to fit a world to (resumable)")
    log.add_argument("--schedules", default="random,schedule_mixture,schedule_blocks,schedule_phases,uniform,task_static",
                     help="comma list of schedule families and agent names (agents.harness.episode_log)")
    sweep(log, tasks="math_word_problems", seeds=5, seeds_help="number of seeds (schedules drawn per family)")
    log.add_argument("--name", default="", help="the data set's name on its card (default: the folder's name)")
    log.add_argument("--out", required=True, help="the data set's folder (episodes.jsonl, card.json, CARD.md)")
    log.add_argument("--quiet", action="store_true", help="no progress bar")
    common(log)
    log.set_defaults(func=cmd_log_episodes, env_id=MINI_V2_ID)

    fit = command("fit-world", "fit the surrogate's world parameters to recorded histories or trajectories")
    fit.add_argument("histories", nargs="+", help="run folders, episode folders, history.jsonl or trajectory .json files")
    fit.add_argument("-o", "--output", default=None, help=f"the fitted world's JSON file (default: {CALIBRATED_WORLD_FILE} for --model "
                     f"calibrated, {FITTED_WORLD_FILE} for the others); it records the environment id it is for")
    fit.add_argument("--holdout", type=float, default=0.2, help="share of episodes held out to report the fit error (every 1/holdout-th)")
    fit.add_argument("--path-terms", action="store_true", help="also fit ReAD-Surrogate-v1's prerequisite scale and repair (a PathWorld)")
    fit.add_argument("--model", choices=["calibrated", "recency", "ensemble", "both"], default="calibrated",
                     help="calibrated: ReAD-Surrogate-v0/v1's world (default); recency, ensemble or both (the better on held-out schedules is written): "
                          "a ReAD-Fitted world, validated on held-out schedules (needs torch)")
    fit.add_argument("--report", default=None, help="folder of the validation report (default: next to the output, OUTPUT_report)")
    fit.add_argument("--seed", type=int, default=0, help="seeds the fit of recency/ensemble models")
    fit.add_argument("--refit-all", action="store_true", help="recency/ensemble: after validation, fit the chosen model on every episode and write that")
    fit.set_defaults(func=cmd_fit_world)

    est = command("estimate", "predicted time of a teacher-data pool build, one ReAD-v0 episode and a sweep "
                              "(read_env.distill.cost), every input printed")
    est.add_argument("--teacher", default="qwen2.5-7b",
                     help="a named shape (smollm2-135m, qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-7b) or a local model folder")
    est.add_argument("--student", default="qwen2.5-0.5b", help="a named shape or a local model folder")
    est.add_argument("--budget", "--budgets", type=parse_budgets, default=[20_000_000, 150_000_000],
                     help=f"comma list of episode budgets in {BUDGET_FORMAT}")
    est.add_argument("--steps", type=positive_int, default=20, help="decision steps per episode")
    est.add_argument("--engine", default="vllm", help="the teacher's engine: hf, openai or vllm")
    est.add_argument("--concurrency", type=positive_int, default=None,
                     help="sequences the teacher engine decodes together (None: hf gen_batch_size 16, openai teacher_concurrency 8, "
                          "vllm 256)")
    est.add_argument("--hardware", default="h200", help="a device of the built-in table of datasheet peaks: h200, h100 or a100")
    est.add_argument("--calibration", default=None,
                     help="a JSON file written by benchmarks/gpu_check.py --out: its device and measured efficiencies")
    est.add_argument("--efficiency", action="append", default=[], metavar="PHASE=VALUE",
                     help="share of a phase's roofline reached, in (0, 1] (generation, training, probes, evaluation, "
                          "checkpoints); repeatable")
    est.add_argument("--agents", default="all", help="comma list of agent names ('all': every default agent) or a count")
    est.add_argument("--tasks", type=task_count, default="all", help="comma list of task names (or all/single/multi) or a count")
    est.add_argument("--seeds", type=positive_int, default=10, help="number of seeds")
    est.add_argument("--devices", type=positive_int, default=1, help="devices running episodes in parallel")
    est.add_argument("--pool-tokens", type=parse_budget, default=None,
                     help="teacher tokens the pool holds (None: capabilities x an episode's generation tokens, enough for any allocation)")
    est.add_argument("--no-pool", action="store_true", help="every episode generates its teacher data online (today's ReAD-v0)")
    est.add_argument("--json", action="store_true", help="print every figure and input as JSON")
    est.set_defaults(func=cmd_estimate)

    pool = command("pool", "the teacher's answers to ReAD-v0's prompt streams, generated once: build (or extend) a pool, "
                           "or show its card")
    pool.add_argument("action", choices=["build", "show"], help="build: generate what the pool lacks; show: print its card")
    pool.add_argument("path", help="the pool's folder (use it as gym.make('ReAD-v0', teacher_pool=PATH))")
    pool.add_argument("--per-bucket", type=positive_int, default=64, help="stream elements answered per capability and difficulty bucket")
    pool.add_argument("--capabilities", type=parse_capabilities, default="all", help="comma list of capabilities, or all")
    pool.add_argument("--teacher", default=None, help="teacher folder or cached hub id (default: the embedded SmolLM2-135M-Instruct)")
    pool.add_argument("--teacher-engine", choices=["hf", "openai", "vllm"], default=None, help="where answers are generated (default hf)")
    pool.add_argument("--teacher-url", default=None, help="the OpenAI-compatible server of --teacher-engine openai (http://HOST:PORT/v1)")
    pool.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="a DistillerConfig option (JSON value), repeatable; the pool's key holds the episodes' decoding "
                           "(max_new_tokens, temperature, top_p) and prompt settings (probe_items, eval_items, use_banks, bank_share)")
    pool.add_argument("--device", default="auto", help="torch device of an in-process teacher: auto, cpu, cuda, ...")
    pool.add_argument("--batch-size", type=positive_int, default=None, help="prompts per engine call (default: the gen_batch_size option)")
    pool.add_argument("--quiet", action="store_true", help="no progress bar")
    pool.set_defaults(func=cmd_pool)

    ag = command("agents", "list the agent names")
    ag.set_defaults(func=cmd_agents)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a mistake in the input ends it with one line (exit status 2), Ctrl-C with one line
    naming what was kept (exit status 130)."""
    args = build_parser().parse_args(argv)
    args.kept = "nothing written yet"
    try:
        check_env_id(getattr(args, "env_id", None))
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"read-env {args.command}: error: " + str(error).replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: kept {args.kept() if callable(args.kept) else args.kept}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout closed it (``--json | head``): what was written stays written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the interpreter's final flush fails no more
        return 141  # 128 + SIGPIPE, as a shell reports a command cut off by a closed pipe


def check_env_id(env_id: str | None) -> None:
    """A registered ReAD environment id (or None: the command takes none)."""
    import gymnasium as gym

    known = sorted(name for name in gym.registry if name.startswith("ReAD-"))
    if env_id is not None and env_id not in known:
        raise UsageError(unknown("environment id", env_id, known))


if __name__ == "__main__":
    raise SystemExit(main())
