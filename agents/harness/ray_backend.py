"""Run ``compare`` episodes on Ray actors, locally or on a cluster (``pip install 'read-env[ray]'``).

Each actor (:class:`EpisodeWorker`) declares ``num_cpus=1`` and ``num_gpus=gpus_per_episode`` and runs
episodes one after another, so the models it loaded for one episode (and a vLLM engine) serve its next ones
(:func:`~read_env.distill.models.shared_models` keeps them in the process); as many actors start as the
cluster's CPUs and GPUs hold at once (at most one per episode). Results come back in the order episodes
finish. An actor whose process dies is restarted and its episode retried (twice), which continues the
interrupted episode from its last completed step (:mod:`agents.harness.compare`). With ``address=None`` an
already initialised Ray is used, else a local one is started (and shut down afterwards); ``address="auto"``
or ``"ray://HOST:10001"`` joins a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

RETRIES = 2


class EpisodeWorker:
    """A Ray actor running ``run_job`` on the jobs it is given, in one process that keeps what they load."""

    def __init__(self, run_job: Callable[[Any], dict[str, Any]]) -> None:
        self.run_job = run_job

    def run(self, job: Any) -> dict[str, Any]:
        return self.run_job(job)


def actor_count(resources: dict[str, float], gpus_per_episode: float, jobs: int) -> int:
    """How many :class:`EpisodeWorker` actors fit at once in a cluster of ``resources`` (at least 1, at most ``jobs``)."""
    fit = int(resources.get("CPU", 1))
    if gpus_per_episode > 0:
        fit = min(fit, int(resources.get("GPU", 0) / gpus_per_episode))
    return max(1, min(fit, jobs))


def run_on_ray(run_job: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], address: str | None = None,
               gpus_per_episode: float = 0.0) -> Iterator[dict[str, Any]]:
    """Yield ``run_job(job)`` for every job, each computed by an :class:`EpisodeWorker` actor, as soon as it finishes."""
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as error:
        raise RuntimeError("--backend ray needs Ray: pip install 'read-env[ray]'") from error
    if gpus_per_episode < 0:
        raise ValueError(f"gpus_per_episode must be >= 0, got {gpus_per_episode}")
    if not jobs:
        return
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    worker = ray.remote(num_cpus=1, num_gpus=gpus_per_episode, max_restarts=RETRIES, max_task_retries=RETRIES)(EpisodeWorker)
    actors = [worker.remote(run_job) for _ in range(actor_count(ray.cluster_resources(), gpus_per_episode, len(jobs)))]
    try:
        yield from ActorPool(actors).map_unordered(lambda actor, job: actor.run.remote(job), jobs)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started_here:
            ray.shutdown()
