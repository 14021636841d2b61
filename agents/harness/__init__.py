"""The experiment harness: play an agent on an environment id (:mod:`~agents.harness.runner`), compare agents
over tasks, budgets and seeds (:mod:`~agents.harness.compare`, optionally on Ray), paired statistics, plots and
per-step logs. It depends on :mod:`agents.base` and the registry, never on a policy's internals."""
