"""Every script in ``benchmarks/`` runs at its smallest settings, each in a subprocess with a timeout, exits 0 and
prints its figures (the same code paths as a full run, at tiny sizes). ``gpu_check.py`` is run by
``tests/test_gpu_check.py``. The scripts that read a data set get one logged here in a second
(``log-episodes`` on ReAD-Surrogate-v1); the ReAD-Mini ones use a tiny student."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
TIMEOUT_S = 300
TESTED_ELSEWHERE = {"gpu_check.py": "tests/test_gpu_check.py"}
TINY_STUDENT = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "pretrain_tokens": 20_000}
TINY_MINI = ["--env-kwarg", f"student={json.dumps(TINY_STUDENT)}", "--env-kwarg", "probe_items=12", "--env-kwarg", "eval_items=12",
             "--env-kwarg", 'cache_dir="{work}/cache"']
NUMBER = r"[+-]?\d[\d,]*\.?\d*"

CASES = {  # case: its steps (script, arguments, a regular expression its standard output must match), run in order
    "ado_speed_ablation": [("ado_speed_ablation.py", "--seeds 2 --tasks math,chat_assistant".split(),
                            rf"150M\s+ado without speed\s+- task_static: {NUMBER} points \(sd over seeds {NUMBER}\)")],
    "bandit_ceiling": [("bandit_ceiling.py", "--cells 1 --steps 3".split(), rf"mean\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}")],
    "bandit_speed": [("bandit_speed.py", "--repeats 1 --episodes 2 --steps 7".split(),
                      rf"speed-up\s+{NUMBER}x[\s\S]*batched {NUMBER}, reference {NUMBER}, difference {NUMBER}")],
    "batched_students": [("batched_students.py", [*"--members 2 --singles 1 --env-kwarg budget_tokens=4000 --env-kwarg num_steps=2".split(), *TINY_MINI],
                          rf"single episodes one at a time: 1, {NUMBER} episodes/hour[\s\S]*ratio batched/single: {NUMBER}")],
    "budget_remainder": [("budget_remainder.py", "--tiny --budgets 2000 --num-steps 2".split(),
                          rf"2,000\s+{NUMBER} \(\s*{NUMBER}%\)\s+{NUMBER} \(")],
    "checkpoint_sizes": [("checkpoint_sizes.py", "--models tiny --write tiny".split(),
                          rf"tiny\s+full\s+{NUMBER}[\s\S]*written tiny LoRA r8: fp32 {NUMBER} MB \(predicted {NUMBER}\)")],
    "distill_throughput": [("distill_throughput.py", "--tiny --prompts 2 --max-new-tokens 4 --batch 2 --threads 1".split(),
                            rf"generation tokens/s: reference {NUMBER}\s+ours {NUMBER}[\s\S]*training tokens/s:\s+reference {NUMBER}")],
    "env_speed": [("env_speed.py", "--seconds 0.02 --num-envs 8 --breakdown --num-threads 2".split(),
                   rf"ReAD-Fitted-v0 vector, 8 envs\s+{NUMBER} env-steps/s[\s\S]*ReAD-Surrogate-v2 vector, per row: compiled step")],
    "eval_power": [("eval_power.py", "--tiny --items 3 --max-new-tokens 4 --threads 1".split(),
                    rf"general_knowledge\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+3\s+[\d,]+"
                    rf"[\s\S]*chat_assistant\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}  (enough items|too few in)")],
    "fitted_world_baseline": [("fitted_world_baseline.py", ["{data}", "--holdout", "0.5"], rf"held-out profile RMS {NUMBER} points")],
    "identifier_error": [("identifier_error.py", "--steps 5 --train-cards 16 --heldout-cards 8".split(),
                          rf"\| task cards \(read_env.tasks\) \| 15 \| {NUMBER} \| {NUMBER} \|")],
    "jax_speed": [("jax_speed.py", "--seconds 0.01 --num-envs 8 --ppo-timesteps 5120 --sb3-timesteps 512".split(),
                   rf"ppo_jax training .* {NUMBER} steps/s[\s\S]*ratio ppo_jax / SB3: {NUMBER}x")],
    "mini_question and sim_to_real": [
        ("mini_question.py", [*"run --tasks math --seeds 0,1 --kinds fixed,two_phase --episodes 2 --agents uniform".split(),
                              *"--budget 12000 --steps 4 --out {work}/question".split(), *TINY_MINI],
         rf"math best two_phase: search utility {NUMBER}"),
        ("mini_question.py", ["report", "--out", "{work}/question", "--docs", "{work}/question-docs"],
         rf"math: best schedule \(two_phase\) - best fixed = {NUMBER} points"),
        ("mini_question.py", ["power", "--docs", "{work}/question-docs"], rf"math: uniform - task_static,2,{NUMBER},{NUMBER},\d+"),
        ("sim_to_real.py", ["--world", "mini_v1", "--real", "{work}/question", "--budget", "12000"],
         rf"math,task_static,2,{NUMBER},{NUMBER},{NUMBER},{NUMBER}[\s\S]*Spearman\(predicted, measured\) over \d methods"),
    ],
    "mini_v2_experiment": [
        ("mini_v2_experiment.py", [*"run --steps 2 --eval-seeds 2 --validation-seeds 1 --pilot-seeds 2 --grid-step 1 --bandit-seeds 1 --out {work}/v2".split(),
                                   *"--env-kwarg budget_tokens=3000 --env-kwarg final_items=12".split(), *TINY_MINI], r"math\|read_lookahead\|1: final"),
        ("mini_v2_experiment.py", "report --steps 2 --eval-seeds 2 --validation-seeds 1 --pilot-seeds 2 --grid-step 1 --bandit-seeds 1 --out {work}/v2 --docs {work}/v2-docs".split(),
         rf"multilingual_qa \(order\): prerequisite_first - prerequisite_last = {NUMBER} points, 95% CI \[{NUMBER}, {NUMBER}\]"),
        ("mini_v2_world.py", "--out {work}/v2 --docs {work}/v2-docs --steps 2 --eval-seeds 2 --iterations 5 --save {work}/world.json".split(),
         rf"noise ceiling \(evaluation\): R2 {NUMBER}[\s\S]*ensemble \(probe\): R2 {NUMBER}, Spearman [-\w.]+, Kendall [-\w.]+ over 14 schedule means"),
    ],
    "mini_research": [
        ("mini_research.py", [*"transfer --budget 12000 --steps 2 --seeds 0 --out {work}/research".split(), *TINY_MINI], "lingual-seed0"),
        ("mini_research.py", [*"paths --budget 12000 --steps 2 --seeds 0 --out {work}/research".split(), *TINY_MINI], "context-seed0"),
        ("mini_research.py", "report --out {work}/research --docs {work}/research-docs".split(),
         rf'"diagonal_mean": {NUMBER}[\s\S]*math,code,A then B,1,{NUMBER}'),
        ("mini_research.py", [*"speed --out {work}/speed --env-kwarg budget_tokens=12000 --env-kwarg num_steps=2".split(), *TINY_MINI],
         rf'"episode_s": {NUMBER}, "final_utility": {NUMBER}'),
    ],
    "probe_cost": [("probe_cost.py", "--tiny --items 2 --repeats 1 --threads 1".split(),
                    rf"probe seconds per step: today {NUMBER} \(runs {NUMBER}\)\s+new {NUMBER}[\s\S]*Pearson with evaluation over 8")],
    "profiling_noise": [("profiling_noise.py", ["--repeats", "3"], rf"\| 150M \| {NUMBER} \| {NUMBER} \| {NUMBER} \| {NUMBER}, {NUMBER}")],
    "ranking_ceiling": [("ranking_ceiling.py", ["{data}"], rf"math, 1000000: 32, \d+, {NUMBER}, {NUMBER}, {NUMBER}, {NUMBER}")],
    "train_speed": [("train_speed.py", "--tiny --tokens 600 --rounds 1 --peak-size 128 --tokens-per-step 300 --micro-tokens 150".split(),
                     rf"loss of one batch \(\d+ examples\): padded fp32 {NUMBER}, packed fp32 {NUMBER}[\s\S]*"
                     rf"new\s+{NUMBER} tokens/s .* MFU {NUMBER}% of the \w+ peak\nratio new/today: {NUMBER}\n$")],
    "surrogate_headroom": [("surrogate_headroom.py",
                            "--budgets 20 --steps 4 --tasks math,code --per-task --fine-check --ablate --prerequisite-scales 2".split(),
                            rf"20M  uniform {NUMBER}  task_static {NUMBER} .* headroom {NUMBER}[\s\S]*shortfall[\s\S]*ablation: neither")],
    "teacher_throughput": [("teacher_throughput.py",
                            "--tiny --threads 1 --gen-tokens 20 --max-new-tokens 8 --repeats 1 --concurrency 1,2 --requests-per-slot 1".split(),
                            rf"capabilities together: +{NUMBER} tokens/s \({NUMBER}x\), same answers: True[\s\S]*"
                            rf"openai concurrency 2: {NUMBER} tokens/s")],
    "teacher_pool": [("teacher_pool.py", "--tiny --seeds 2 --budget 800 --steps 2".split(),
                      rf"pooled  paired difference: mean {NUMBER}, sd {NUMBER} points over 2 seeds\nsd ratio online / pooled: ")],
}
REQUIRES = {"jax_speed": ("jax", "stable_baselines3")}


def test_every_benchmark_is_run_here_or_elsewhere():
    scripts = {script for steps in CASES.values() for script, _, _ in steps}
    assert {path.name for path in BENCHMARKS.glob("*.py")} == scripts | set(TESTED_ELSEWHERE)
    assert all((ROOT / test).is_file() for test in TESTED_ELSEWHERE.values())


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The module's scratch folder: outputs, temporary files and the tiny student's cache (shared by the ReAD-Mini cases)."""
    return tmp_path_factory.mktemp("benchmarks")


@pytest.fixture(scope="module")
def data(work):
    """A logged data set: 6 schedules x 4 seeds of ReAD-Surrogate-v1 (math, 1M tokens, 3 steps), and the oracle's and best fixed
    allocation's episodes (32 in all)."""
    from agents.cli import main

    folder = work / "data"
    sweep = "log-episodes --env-id ReAD-Surrogate-v1 --tasks math --budgets 1M --seeds 4 --steps 3 --quiet --out"
    assert main([*sweep.split(), str(folder)]) == 0
    return folder


@pytest.mark.parametrize("case", sorted(CASES))
def test_benchmark_runs_at_its_smallest_settings_and_prints_its_figures(case, work, request):
    for module in REQUIRES.get(case, ()):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{case} needs {module}")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "TMPDIR": str(work)}
    for script, arguments, figures in CASES[case]:
        if any("{data}" in argument for argument in arguments):
            arguments = [argument.replace("{data}", str(request.getfixturevalue("data"))) for argument in arguments]
        command = [sys.executable, str(BENCHMARKS / script), *(argument.replace("{work}", str(work)) for argument in arguments)]
        result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr[-3000:]}"
        assert re.search(figures, result.stdout), f"{script} printed no figures matching {figures!r}:\n{result.stdout[-3000:]}"
