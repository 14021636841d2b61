"""Run ``compare`` episodes as Ray tasks, locally or on a cluster (``pip install 'read-env[ray]'``).

Each episode is one task declaring ``num_cpus=1`` and ``num_gpus=gpus_per_episode``; results come back in
the order episodes finish. With ``address=None`` an already initialised Ray is used, else a local one is
started (and shut down afterwards); ``address="auto"`` or ``"ray://HOST:10001"`` joins a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any


def run_on_ray(run_job: Callable[[Any], dict[str, Any]], jobs: Sequence[Any], address: str | None = None,
               gpus_per_episode: float = 0.0) -> Iterator[dict[str, Any]]:
    """Yield ``run_job(job)`` for every job, each computed by a Ray task, as soon as it finishes."""
    try:
        import ray
    except ImportError as error:
        raise RuntimeError("--backend ray needs Ray: pip install 'read-env[ray]'") from error
    if gpus_per_episode < 0:
        raise ValueError(f"gpus_per_episode must be >= 0, got {gpus_per_episode}")
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    task = ray.remote(num_cpus=1, num_gpus=gpus_per_episode, max_retries=2)(run_job)
    pending = [task.remote(job) for job in jobs]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for reference in pending:
            ray.cancel(reference)
        if started_here:
            ray.shutdown()
