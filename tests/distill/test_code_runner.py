"""Generated code runs in a separate process under the limits of ``CODE_LIMITS`` (read_env.distill.evaluation)."""

import os

import pytest
import torch

from read_env.distill.evaluation import CODE_LIMITS, run_python_tests

pytestmark = pytest.mark.skipif(os.name != "posix", reason="resource limits are POSIX")


def test_passing_and_failing_tests():
    assert run_python_tests("def add(a, b):\n    return a + b", "assert add(2, 3) == 5")
    assert not run_python_tests("def add(a, b):\n    return a - b", "assert add(2, 3) == 5")


def test_a_program_cannot_allocate_beyond_the_memory_limit():
    size = 2 * CODE_LIMITS["memory_bytes"]
    assert not run_python_tests(f"block = bytearray({size})", "assert len(block) > 0")
    assert run_python_tests(f"block = bytearray({CODE_LIMITS['memory_bytes'] // 8})", "assert len(block) > 0")


def test_a_program_cannot_write_a_large_file():
    size = 4 * CODE_LIMITS["file_bytes"]
    assert not run_python_tests(f"open('big', 'wb').write(bytes({size}))", "assert True")


def test_a_busy_loop_ends_at_the_timeout():
    assert not run_python_tests("while True:\n    pass", "", timeout=1.0)


def test_the_program_sees_no_environment_variables(monkeypatch):
    monkeypatch.setenv("READ_ENV_SECRET", "x")
    assert run_python_tests("import os", "assert 'READ_ENV_SECRET' not in os.environ")


def test_the_evaluator_tests_a_capabilitys_programs_at_once_and_scores_each_its_own(monkeypatch, tmp_path):
    """Four programs that each wait (at most their 5 s timeout) until all four have started: they pass only when run
    at the same time; each item gets its own program's verdict, in order."""
    from read_env.distill import evaluation
    from read_env.distill.prompts import Prompt

    barrier = ("import pathlib, time\nfolder = pathlib.Path({folder!r})\n(folder / '{k}').touch()\n"
               "while len(list(folder.iterdir())) < 4:\n    time.sleep(0.01)\ndef f():\n    return {value}")
    answers = [barrier.format(folder=str(tmp_path), k=k, value=1 + k % 2) for k in range(4)]
    items = [Prompt("code", "t", f"item {k}", 0.5, check="python", tests="assert f() == 1") for k in range(4)]
    monkeypatch.setattr(evaluation, "CODE_WORKERS", 4)
    monkeypatch.setattr(evaluation, "generate_batch", lambda model, tokenizer, texts, caps, cfg: [([k], True) for k in range(len(texts))])
    evaluator = evaluation.Evaluator(["code"], n_items=1, use_banks=False)
    evaluator.items = {"code": items}

    class Tokenizer:
        chat_template = None

        def decode(self, ids, skip_special_tokens=True):
            return "```python\n" + answers[ids[0]] + "\n```"

    result = evaluator.run(torch.nn.Linear(1, 1), Tokenizer())
    assert result.item_scores[0].tolist() == [1.0, 0.0, 1.0, 0.0]
