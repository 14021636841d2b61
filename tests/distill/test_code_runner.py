"""Generated code runs in a separate process under the limits of ``CODE_LIMITS`` (read_env.distill.evaluation)."""

import os

import pytest

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
