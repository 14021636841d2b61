"""benchmarks/gpu_check.py on the CPU (small sizes): every measurement runs and lands in the JSON summary."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_cpu_and_writes_its_summary(tmp_path):
    out = tmp_path / "check.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--out", str(out)], check=True, timeout=300,
                   env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    summary = json.loads(out.read_text())
    assert summary["device"] == "cpu" and summary["training"]["parameters"] > 0 and summary["training"]["tokens_per_s"] > 0
    assert summary["training"]["mfu"] is None and summary["goals"] == {"mfu_at_least_0.35": None, "vllm_at_least_5x_hf": None}  # no peak FLOP/s on a CPU
    generation = summary["generation"]
    assert generation["engines"] == ["hf"] and 0 < generation["hf"]["tokens"] <= generation["prompts"] * generation["max_new_tokens"]
    episode = summary["episode"]
    assert not episode["truncated"] and 0 < episode["tokens_spent"] <= episode["budget_tokens"]
