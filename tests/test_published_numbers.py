"""v0's and v1's published numbers stay what they were when v2 was added (commit 1a730b7), on any machine: every
observation, reward, utility reading and final utility of fixed rollouts, single and native vector forms, held to
stored values within a tolerance.

Stored values: ``tests/data/published_rollouts.npz`` (2,184 float64 and 35,640 float32 values), written at commit
c71fd63 on the project's machine, where they reproduced bit for bit the 12 sha256 digests this module pinned until
then. Regenerate only to re-publish, knowingly: ``python tests/test_published_numbers.py --write``.

Tolerance: a value passes within ``ATOL + RTOL * |stored|`` plus one step of its stored dtype (observations are
float32 roundings of float64 values, which a 1e-16 change can move by one step). Measured on the project's machine
(AMD EPYC with AVX-512; numpy 2.4.6, numba 0.68.1) with ``python tests/test_published_numbers.py`` (how far this
machine is from the stored values) and ``... --calibration`` (how far a calibration change moves them):

* another CPU, imitated by numba's generic target (``NUMBA_CPU_NAME=generic``), numpy's SIMD dispatch without
  ``X86_V4 X86_V3`` (``NPY_DISABLE_CPU_FEATURES``; CI runs this module once more under both) and OpenBLAS's kernels
  of another core (``OPENBLAS_CORETYPE`` Prescott, Sandybridge or SkylakeX; measured by hand only, since this
  workplace pins that variable for OpenBLAS's correctness): numba's alone changes nothing; numpy's alone changes
  521 float64 values, OpenBLAS's alone 109 to 443; all three 517 to 620, by at most 1.5e-16 (1.1e-4 of the
  tolerance), and no float32 value;
* a calibration change: any one score of ``paper_calibration.json`` (``student_only``, ``teacher_only``, each
  ``transfer`` cell) moved by 1e-4 points, i.e. 1e-6 in profile units, moves some value by at least 2,100 times
  the tolerance (the least: transfer at 150M, long_context to general_knowledge, 2,100x; teacher_only math,
  2,160x; student_only code, 9,510x), 4.3e-9 or more in absolute terms.

So ``ATOL = 1e-12`` and ``RTOL = 1e-10`` sit about 9,000x above the cross-CPU differences and 2,100x below the
smallest calibration change; ``test_a_calibration_change_of_1e_4_points_is_caught`` checks every one of the 208.
"""

import copy
import itertools
import sys
from collections.abc import Mapping
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from read_env.surrogate import world as world_module

pytestmark = pytest.mark.filterwarnings("ignore:.*ReAD-Surrogate-v1 is out of date:DeprecationWarning")  # v1 made on purpose

STORE = Path(__file__).parent / "data" / "published_rollouts.npz"
SETTINGS = {
    "default": {},
    "random": {"task": "random", "world": "random"},
    "coding_150M": {"task": "coding_assistant", "budget_tokens": 150_000_000},
}
CASES = list(itertools.product(("ReAD-Surrogate-v0", "ReAD-Surrogate-v1"), SETTINGS, (False, True)))
"""(environment id, setting, native vector form or not): the published rollouts."""
ATOL = 1e-12
RTOL = 1e-10
POINT_CHANGE = 1e-4
"""The calibration change (points; 1e-6 in profile and utility units) the stored values must detect."""


def rollout(env_id: str, setting: str, vector: bool) -> dict[str, np.ndarray]:
    """Every number a 45-step rollout from seed 5 with fixed random logit actions shows (3 rows in the vector
    form), by field: the observation's fields [45, (3,) width], ``reward`` and ``utility`` [45(, 3)], and the
    ``final_utility`` of each episode as it ends where the environment reports it (v1) [episodes]."""
    actions = np.random.default_rng(0).uniform(-1, 1, (45, 3, 8)).astype(np.float32)
    record: dict[str, list] = {}
    if vector:
        env = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **SETTINGS[setting])
    else:
        env, actions = gym.make(env_id, **SETTINGS[setting]), actions[:, 0]
    env.reset(seed=5)
    for action in actions:
        observation, reward, terminated, _, info = env.step(action)
        for field, value in (*observation.items(), ("reward", reward), ("utility", info["utility"])):
            record.setdefault(field, []).append(value)
        if vector and "final_utility" in info.get("final_info", {}):
            record.setdefault("final_utility", []).extend(info["final_info"]["final_utility"][terminated])
        if not vector and "final_utility" in info:
            record.setdefault("final_utility", []).append(info["final_utility"])
        if not vector and terminated:
            env.reset()
    env.close()
    return {field: np.array(values) for field, values in record.items()}


def all_rollouts() -> dict[str, np.ndarray]:
    """Every case's rollout, flat by ``env_id:setting:form:field``."""
    return {f"{case_key(*case)}:{field}": values for case in CASES for field, values in rollout(*case).items()}


def case_key(env_id: str, setting: str, vector: bool) -> str:
    return f"{env_id}:{setting}:{'vector' if vector else 'single'}"


def excess(values: Mapping[str, np.ndarray], stored: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Largest ``|value - stored| / tolerance`` by key (the tolerance in the module docstring); ``inf`` for a
    key only one side has or a shape that differs. Values agree where every entry is at most 1."""
    result = {key: np.inf for key in set(values) ^ set(stored)}
    for key in set(values) & set(stored):
        actual, expected = np.asarray(values[key], dtype=np.float64), np.asarray(stored[key])
        if actual.shape != expected.shape:
            result[key] = np.inf
            continue
        step = np.spacing(np.abs(expected)).astype(np.float64)  # one step of the stored dtype
        expected = expected.astype(np.float64)
        tolerance = ATOL + RTOL * np.abs(expected) + step
        result[key] = float(np.max(np.abs(actual - expected) / tolerance, initial=0.0))
    return result


def mismatches(values: Mapping[str, np.ndarray], stored: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The keys of :func:`excess` beyond the tolerance."""
    return {key: ratio for key, ratio in excess(values, stored).items() if not ratio <= 1.0}


def calibration_numbers(data: Mapping) -> list[tuple]:
    """Paths to every score of calibration data in points: ``(table, capability)`` and ``(transfer, label, i, j)``."""
    scores = [(table, name) for table in ("student_only", "teacher_only") for name in data[table]]
    cells = [("transfer", label, i, j) for label, matrix in data["transfer"].items() for i, j in np.ndindex(np.shape(matrix))]
    return scores + cells


def shifted(data: Mapping, path: tuple) -> dict:
    """A copy of calibration data with the number at ``path`` moved by ``POINT_CHANGE`` points."""
    data = copy.deepcopy(data)
    container = data
    for part in path[:-1]:
        container = container[part]
    container[path[-1]] += POINT_CHANGE
    return data


def rollouts_with(calibration: Mapping) -> dict[str, np.ndarray]:
    """:func:`all_rollouts` with the paper's world built from ``calibration`` instead of ``paper_calibration.json``."""
    original = world_module.paper_calibration
    world_module.paper_calibration = lambda: calibration
    try:
        return all_rollouts()
    finally:
        world_module.paper_calibration = original


def load_store() -> dict[str, np.ndarray]:
    with np.load(STORE) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def stored() -> dict[str, np.ndarray]:
    return load_store()


@pytest.mark.parametrize("env_id, setting, vector", CASES)
def test_v0_and_v1_rollouts_hold_the_published_numbers(stored, env_id, setting, vector):
    prefix = case_key(env_id, setting, vector) + ":"
    values = {prefix + field: value for field, value in rollout(env_id, setting, vector).items()}
    assert not mismatches(values, {key: value for key, value in stored.items() if key.startswith(prefix)})


def test_a_calibration_change_of_1e_4_points_is_caught(stored):
    """Each score of the paper's calibration moved by 1e-4 points makes some stored value mismatch."""
    paper = world_module.paper_calibration()
    numbers, k = calibration_numbers(paper), len(paper["capabilities"])
    missed = [path for path in numbers if not mismatches(rollouts_with(shifted(paper, path)), stored)]
    assert len(numbers) == 2 * k + len(paper["transfer"]) * k * k and not missed


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        STORE.parent.mkdir(exist_ok=True)
        np.savez_compressed(STORE, **all_rollouts())
    elif sys.argv[1:] == ["--calibration"]:
        published, paper = load_store(), world_module.paper_calibration()
        found = [(max(excess(rollouts_with(shifted(paper, path)), published).values()), path) for path in calibration_numbers(paper)]
        for table in ("student_only", "teacher_only", "transfer"):
            ratio, path = min((entry for entry in found if entry[1][0] == table), key=lambda entry: entry[0])
            name = ":".join(map(str, path))
            print(f"{table}: least caught {name} + {POINT_CHANGE} points, largest |difference| / tolerance {ratio:.3g}")
    elif not sys.argv[1:]:
        published, current = load_store(), all_rollouts()
        for dtype in sorted({value.dtype.str for value in published.values()}):
            keys = [key for key, value in published.items() if value.dtype.str == dtype]
            differences = np.concatenate([np.abs(current[key] - published[key].astype(np.float64)).ravel() for key in keys])
            changed = int((differences > 0).sum())
            print(f"{dtype}: {changed} of {differences.size} values differ, largest |difference| {differences.max():.3g}")
        ratios = excess(current, published)
        print(f"largest |difference| / tolerance {max(ratios.values()):.3g} ({max(ratios, key=ratios.get)})")
    else:
        sys.exit("usage: python tests/test_published_numbers.py [--calibration | --write]")
