"""benchmarks/gpu_check.py --dry-run on the CPU: the GPU acceptance run's code path at tiny sizes, every figure in its JSON file,
and ``read-env estimate`` reading its calibration."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_measures_every_phase_and_calibrates_the_cost_model(tmp_path, capsys):
    out = tmp_path / "check.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--device", "cpu", "--out", str(out)],
                         check=True, timeout=300, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    summary = json.loads(out.read_text())
    assert summary["device"] == "cpu" and summary["dry_run"] and summary["hardware"]["peak_flops"] > 0
    assert [row["shape"] for row in summary["training"]] == ["tiny-0.5b", "tiny-1.5b"]
    for row in summary["training"]:
        assert row["tokens"] > 0 and 0 < row["mfu"] and row["peak_memory_gib"] is None  # no CUDA memory on a CPU
    assert summary["generation"]["engines"] == ["hf"] and summary["generation"]["hf"]["tokens"] > 0
    episode = summary["episode"]
    assert episode["error"] is None and not episode["truncated"] and 0 < episode["tokens_spent"] <= episode["budget_tokens"]
    assert episode["tokens_generated"] + episode["tokens_trained"] == episode["tokens_spent"] and episode["checkpoint_bytes"] > 0
    cost = summary["cost_model"]
    phases = {"generation", "training", "probes", "evaluation", "checkpoints"}
    assert set(cost["episode"]["measured"]) == set(cost["episode"]["predicted_assumed"]) == phases
    assert cost["episode"]["measured"]["generation"] == episode["step_seconds"]["generation"] > 0
    assert len(cost["predictions"]) == 6 and summary["calibration"]["efficiency"]["training"] == summary["training"][0]["mfu"]
    for line in ("training tiny-0.5b", "generation hf", "episode ReAD-v0 3,000 tokens in 2 steps", "predicted episode, this run @ 150M"):
        assert line in run.stdout, line

    from agents.cli import main

    assert main(["estimate", "--calibration", str(out), "--engine", "hf", "--budget", "1M", "--agents", "1", "--tasks", "1",
                 "--seeds", "1"]) == 0
    text = capsys.readouterr().out
    assert f"generation {summary['calibration']['generation']['hf']:.3g} (measured: {out} (cpu))" in text
